"""The real inference Lambda hands a low-confidence sample to the ML Feedback connector by invoke, through a
real core: greengrasssdk's own Lambda client in a Python 3.8 worker, simcore's IPC, the connector registry.

The group is the template's inference path (GGShadowService → inference on `update/documents`, inference →
cloud on the output and command topics) with the MLFeedback connector and FEEDBACK_CONNECTOR_ARN set as the
template sets them. No subscription routes to the connector: the sample reaches it by invoke alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lambdas_fixtures.harness import (
    PY38,
    function_arn,
    interpreters,
    make_group,
)
from support.recorders import RecordingCloud

from simcore.connectors.registry import build_registry
from simcore.core.assemble import Core
from simcore.group import CLOUD, SHADOW_SERVICE, Connector, Function

REPO = Path(__file__).resolve().parents[1]
THING = "test-core"  # the harness group's core thing
INFERENCE = function_arn("rain-inference")
FEEDBACK = "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1"
FEEDBACK_FUNCTION = "arn:aws:lambda:us-east-1:aws:function:MLFeedback"  # the template's FEEDBACK_CONNECTOR_ARN
BUCKET = "feedback-bucket"
SHADOW = f"$aws/things/{THING}/shadow"
OUTPUT = f"rain/{THING}/inference/output"
COMMAND_IN = f"rain/{THING}/command/input"
COMMAND_OUT = f"rain/{THING}/command/output"
WET = {"temperature": 8.0, "humidity": 97.0, "pressure": 995.0, "pressure_tendency_3h": -4.0}
# The worker: the Lambdas' Python 3.8 venv when it is there (their runtime), else this interpreter.
KIND = "py38" if PY38.exists() else "py311"


def inference_function(model_dir: Path) -> Function:
    """The real rain_inference Lambda, pinned, every sample low-confidence (threshold 0.5 ± 0.5)."""
    return Function(
        id="rain-inference", arn=INFERENCE, name="rain-inference", code_dir=REPO / "lambdas" / "rain_inference",
        handler="rain_inference.handler.function_handler", runtime="python3.8", pinned=True, timeout_s=10,
        environment={
            "THING_NAME": THING, "MODEL_DIR": str(model_dir), "METRICS_INTERVAL_S": "86400",
            "FEEDBACK_BAND": "0.5", "FEEDBACK_CONFIG_ID": "rain-low-confidence",
            "FEEDBACK_CONNECTOR_ARN": FEEDBACK_FUNCTION,
        },
    )


def feedback_group(model_dir: Path, with_connector: bool):
    routes = [
        (CLOUD, f"{SHADOW}/update", SHADOW_SERVICE),
        (SHADOW_SERVICE, f"{SHADOW}/update/documents", INFERENCE),
        (INFERENCE, OUTPUT, CLOUD),
        (CLOUD, COMMAND_IN, INFERENCE),
        (INFERENCE, COMMAND_OUT, CLOUD),
    ]
    connectors = ()
    if with_connector:
        routes += [(FEEDBACK, "feedback/message/status", CLOUD), (FEEDBACK, "feedback/message/prediction", CLOUD)]
        connectors = (Connector("MLFeedback", FEEDBACK, {"FeedbackConfigurationMap": json.dumps({
            "rain-low-confidence": {"s3-bucket-name": BUCKET, "s3-prefix": THING,
                                    "content-type": "application/json", "file-ext": "json"}})}),)
    return make_group([inference_function(model_dir)], routes, connectors=connectors)


def start_core(tmp_path: Path, model_dir: Path, with_connector: bool):
    cloud = RecordingCloud()
    group = feedback_group(model_dir, with_connector)
    root = tmp_path / "ggc"
    cores: list[Core] = []

    def publish(topic: str, payload: bytes, source: str) -> None:
        cores[0].publish(topic, payload, source=source)

    registry = build_registry(group, root, publish=publish, cloud_available=False) if with_connector else None
    core = Core(group, runtime_root=root, cloud=cloud, connectors=registry, interpreters=interpreters(KIND))
    cores.append(core)
    core.start()
    return core, cloud, registry, root


@pytest.fixture
def with_connector(tmp_path, model_dir):
    core, cloud, registry, root = start_core(tmp_path, model_dir, with_connector=True)
    yield core, cloud, registry, root
    core.stop()
    registry.stop()


@pytest.fixture
def without_connector(tmp_path, model_dir):
    core, cloud, _, _ = start_core(tmp_path, model_dir, with_connector=False)
    yield core, cloud
    core.stop()


def command(core: Core, cloud: RecordingCloud, request_id: int, name: str, **args) -> dict:
    """Send a command to the inference Lambda and wait for its answer."""
    message = {"id": request_id, "command": name}
    if args:
        message["args"] = args
    core.publish(COMMAND_IN, json.dumps(message).encode())
    answers = cloud.wait_for(COMMAND_OUT, count=request_id, timeout=60.0)  # the first waits for the model load
    answer = json.loads(answers[request_id - 1])
    assert answer["id"] == request_id and answer["ok"] is True, answer
    return answer["result"]


def report(core: Core, seq: int) -> None:
    """Write a sensor reading to the core's shadow, as the sensor Lambda does."""
    reported = dict(WET, seq=seq, ts=1357020000 + 3600 * seq, observed_rain=True)
    core.publish(f"{SHADOW}/update", json.dumps({"state": {"reported": reported}}).encode())


@pytest.mark.py38
def test_a_low_confidence_sample_reaches_the_connector_by_invoke_and_is_stored(with_connector):
    core, cloud, registry, root = with_connector
    command(core, cloud, 1, "set-threshold", threshold=0.5)
    report(core, 7)
    [output] = [json.loads(payload) for payload in cloud.wait_for(OUTPUT)]
    [status] = [json.loads(payload) for payload in cloud.wait_for("feedback/message/status")]
    [prediction] = [json.loads(payload) for payload in cloud.wait_for("feedback/message/prediction")]

    assert status["response"]["status"] == "success", status
    key = status["response"]["s3_response"]["key"]
    assert key.startswith(f"{THING}/") and key.endswith(".json")
    stored = root / "var" / "connectors" / "MLFeedback" / BUCKET / key
    assert json.loads(stored.read_bytes()) == WET, "the invoke's payload is the reading the model saw"
    assert prediction["source-ref"] == f"s3://{BUCKET}/{key}"
    assert prediction["config-id"] == "rain-low-confidence"
    assert prediction["model-prediction"] == pytest.approx([1 - output["p_rain"], output["p_rain"]])
    metadata = prediction["metadata"]
    assert (metadata["thing"], metadata["seq"], metadata["observed_rain"]) == (THING, 7, True)
    assert metadata["model_version"] == output["model_version"] and metadata["threshold"] == 0.5

    metrics = command(core, cloud, 2, "get-metrics")
    assert metrics["counters"]["feedback.samples"] == 1
    assert "error.feedback" not in metrics["counters"]
    assert registry.status()["connectors"][FEEDBACK]["received"] == 1
    # It went by invoke: the router carried nothing to the connector.
    assert FEEDBACK not in core.status()["router"]["per_target"]


@pytest.mark.py38
def test_without_the_connector_the_invoke_fails_is_counted_and_the_lambda_carries_on(without_connector):
    core, cloud = without_connector
    command(core, cloud, 1, "set-threshold", threshold=0.5)
    report(core, 1)
    report(core, 2)
    outputs = [json.loads(payload) for payload in cloud.wait_for(OUTPUT, count=2)]
    assert [output["seq"] for output in outputs] == [1, 2], "each prediction is published despite the failure"
    metrics = command(core, cloud, 2, "get-metrics")
    assert metrics["counters"]["error.feedback"] == 2
    assert "feedback.samples" not in metrics["counters"]
    assert FEEDBACK_FUNCTION in metrics["last_error"] and "not deployed" in metrics["last_error"]
