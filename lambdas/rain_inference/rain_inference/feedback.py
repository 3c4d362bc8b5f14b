"""Low-confidence samples for the ML Feedback connector, so they can be labelled and used to retrain.

The v1 ML Feedback connector takes `ConfigId`, `ModelInput` (bytes), `ModelPrediction` (a list of
probabilities) and `Metadata` (an object) through the Greengrass ML SDK's `feedback` client, not over MQTT.
This Lambda publishes those same four fields as one JSON message on FEEDBACK_TOPIC (the group routes it to
the connector); `ModelInput` is the reading's JSON, base64-encoded because JSON has no bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Dict, Mapping


def is_low_confidence(p_rain: float, threshold: float, band: float) -> bool:
    """True when the probability lies within `band` of the decision threshold (inclusive)."""
    return band > 0 and abs(p_rain - threshold) <= band


def feedback_message(config_id: str, reading: Mapping[str, object], p_rain: float,
                     metadata: Mapping[str, object]) -> Dict[str, object]:
    """The connector's input for one sample."""
    model_input = json.dumps(dict(reading), sort_keys=True, allow_nan=False).encode("utf-8")
    return {
        "ConfigId": config_id,
        "ModelInput": base64.b64encode(model_input).decode("ascii"),
        "ModelPrediction": [1.0 - p_rain, p_rain],
        "Metadata": dict(metadata, **{"content-type": "application/json", "encoding": "base64"}),
    }
