"""Messages in the input format of the Greengrass v1 CloudWatch Metrics connector (cloudwatch/metric/put).

Each message is one datum: `{"request": {"namespace", "metricData": {"metricName", "dimensions":
[{"name", "value"}], "value", "unit", "timestamp"}}}`. `timestamp` is epoch seconds, as in the connector
guide's examples (`time.time()`). Values must be finite: undefined metrics are left out.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional


def metric_message(namespace: str, name: str, value: float, unit: str, dimensions: Mapping[str, str],
                   timestamp: float) -> Dict[str, object]:
    """One connector input message."""
    return {
        "request": {
            "namespace": namespace,
            "metricData": {
                "metricName": name,
                "dimensions": [{"name": key, "value": str(dimensions[key])} for key in sorted(dimensions)],
                "value": value,
                "unit": unit,
                "timestamp": timestamp,
            },
        }
    }


def metrics_messages(namespace: str, snapshot: Mapping[str, object], previous: Optional[Mapping[str, object]],
                     dimensions: Mapping[str, str], timestamp: float) -> List[Dict[str, object]]:
    """The connector messages for one metrics snapshot; counts are the increase since `previous`."""
    def delta(key: str) -> float:
        before = previous.get(key, 0) if previous else 0
        return float(snapshot.get(key, 0)) - float(before)

    latency = snapshot.get("latency_us") or {}
    scored = snapshot.get("scored") or {}
    rain_rate = snapshot.get("rain_rate")
    candidates = [
        ("Predictions", delta("count"), "Count"),
        ("Errors", delta("errors"), "Count"),
        ("LatencyP50", latency.get("p50"), "Microseconds"),
        ("LatencyP99", latency.get("p99"), "Microseconds"),
        ("RainRate", None if rain_rate is None else 100.0 * rain_rate, "Percent"),
        ("Precision", scored.get("precision"), "None"),
        ("Recall", scored.get("recall"), "None"),
        ("RocAuc", scored.get("roc_auc"), "None"),
    ]
    return [metric_message(namespace, name, float(value), unit, dimensions, timestamp)
            for name, value, unit in candidates
            if value is not None and math.isfinite(float(value))]
