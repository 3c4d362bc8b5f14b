"""The ML Feedback connector: the Lambda's feedback message and the ML SDK's invocation in, sampling as the
guide defines it, samples stored under S3-like keys (locally, or in S3 through moto), and its outputs."""

from __future__ import annotations

import base64
import json
import random
import re
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from rain_inference.feedback import model_input
from support.recorders import RecordingPublisher

from simcore.connectors.ml_feedback import (
    METRICS_TOPIC,
    PREDICTION_TOPIC,
    STATUS_TOPIC,
    MLFeedbackConnector,
    MLFeedbackSettings,
)
from simcore.connectors.parameters import ConnectorConfigError
from simcore.connectors.registry import AWS_ENV, build_registry
from simcore.connectors.sampling import SamplingStrategy, entropy, margin
from simcore.connectors.sinks import LocalObjectStore
from simcore.group import Connector, Group

ARN = "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1"
SDK_ARN = "arn:aws:lambda:us-east-1:aws:function:MLFeedback"
BUCKET = "rain-edge-feedback-123456789012-us-east-1"
READING = {"temperature": 18.2, "humidity": 91.0, "pressure": 1003.4, "pressure_tendency_3h": -1.6}


class Outputs(RecordingPublisher):
    """What the connector published; it can also hold the connector's own thread in a publish."""

    def __init__(self) -> None:
        super().__init__()
        # Set `hold`, and the connector's own thread waits in its next publish until `release` is set.
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()

    def __call__(self, topic: str, payload: bytes, source: str) -> None:
        if self.hold.is_set() and threading.current_thread().name == "connector-MLFeedback":
            self.held.set()
            self.release.wait(20)
        super().__call__(topic, payload, source)


def feedback_message(config_id: str, reading: dict, p_rain: float, metadata: dict) -> dict:
    """One sample in the connector's message form (simcore's extension: `ModelInput` base64 of the model input)."""
    return {
        "ConfigId": config_id,
        "ModelInput": base64.b64encode(model_input(reading)).decode("ascii"),
        "ModelPrediction": [1.0 - p_rain, p_rain],
        "Metadata": dict(metadata, **{"content-type": "application/json", "encoding": "base64"}),
    }


@pytest.fixture
def outputs() -> Outputs:
    return Outputs()


def configuration_map(**entries) -> str:
    base = {"rain-low-confidence": {
        "s3-bucket-name": BUCKET, "s3-prefix": "RainEdgeCore", "content-type": "application/json", "file-ext": "json",
    }}
    base.update(entries)
    return json.dumps(base)


def make_connector(tmp_path: Path, outputs: Outputs, feedback_map: str | None = None, limit: str = "10",
                   draw: random.Random | None = None) -> tuple[MLFeedbackConnector, LocalObjectStore]:
    settings = MLFeedbackSettings.from_connector(Connector("MLFeedback", ARN, {
        "FeedbackConfigurationMap": feedback_map or configuration_map(), "RequestLimit": limit,
    }))
    store = LocalObjectStore(tmp_path / "MLFeedback")
    return MLFeedbackConnector(ARN, settings, store, outputs, draw=draw), store


def lambda_message(p_rain: float = 0.47, config_id: str = "rain-low-confidence") -> bytes:
    """A sample in the message form, as a group that routes feedback from a topic would send it."""
    message = feedback_message(config_id, READING, p_rain, {"thing": "RainEdgeCore", "seq": 7, "threshold": 0.5})
    return json.dumps(message).encode()


def test_lambda_feedback_message_is_stored_under_an_s3_style_key(tmp_path, outputs):
    connector, store = make_connector(tmp_path, outputs)
    connector.deliver("rain/RainEdgeCore/feedback", lambda_message(0.47))
    [status] = outputs.wait_for(STATUS_TOPIC)
    [prediction] = outputs.wait_for(PREDICTION_TOPIC)
    connector.stop()

    assert status["response"]["status"] == "success"
    key = status["response"]["s3_response"]["key"]
    assert status["response"]["s3_response"]["bucket"] == BUCKET
    assert key.startswith("RainEdgeCore/") and key.endswith(".json")
    stored = tmp_path / "MLFeedback" / BUCKET / key
    assert json.loads(stored.read_bytes()) == READING, "the model input bytes, decoded from the message's base64"
    assert status["response"]["s3_response"]["ETag"].strip('"') and status["id"]

    assert prediction["source-ref"] == f"s3://{BUCKET}/{key}"
    assert prediction["model-prediction"] == pytest.approx([0.53, 0.47])
    assert prediction["config-id"] == "rain-low-confidence"
    assert prediction["metadata"]["seq"] == 7
    assert len(prediction["metadata"]["publish-ts"]) == len("2019-07-11 00:12:48.816752")

    [indexed] = store.uploads()
    assert indexed["key"] == key and indexed["content_type"] == "application/json"
    assert indexed["metadata"]["seq"] == "7", "S3 user metadata is text"
    metric_names = [m["request"]["metricData"]["metricName"] for m in outputs.on(METRICS_TOPIC)]
    assert metric_names == ["SampleSize", "SampleUploadSuccess", "SampleAndPredictionPublished"]
    assert {source for _, _, source in outputs.messages} == {ARN}


def test_ml_sdk_invocation_is_served_like_the_feedback_client_sends_it(tmp_path, outputs):
    connector, _ = make_connector(tmp_path, outputs)
    context = {"custom": {"ConfigId": "rain-low-confidence", "ModelPrediction": [0.6, 0.4], "Metadata": {"k": "v"}}}
    client_context = base64.b64encode(json.dumps(context).encode())
    payload, func_err = connector.invoke(b'{"temperature": 3.5}', client_context)
    assert func_err == ""
    assert json.loads(payload)["queued"] is True
    [status] = outputs.wait_for(STATUS_TOPIC)
    connector.stop()
    key = status["response"]["s3_response"]["key"]
    assert (tmp_path / "MLFeedback" / BUCKET / key).read_bytes() == b'{"temperature": 3.5}'
    assert status["id"] == json.loads(payload)["id"]


@pytest.mark.parametrize(
    ("message", "wording"),
    [
        ({"ModelInput": "e30=", "ModelPrediction": [1.0]},
         "ConfigId argument of Feedback.Client.publish is a required argument but was not provided"),
        ({"ConfigId": "rain-low-confidence", "ModelPrediction": [1.0]},
         "ModelInput argument of Feedback.Client.publish is a required argument but was not provided"),
        ({"ConfigId": "-bad", "ModelInput": "e30=", "ModelPrediction": [1.0]},
         "Parameter ConfigId must match: ^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$"),
        ({"ConfigId": "rain-low-confidence", "ModelInput": "e30=", "ModelPrediction": 0.4},
         "Argument ModelPrediction must be of type dict or list"),
        ({"ConfigId": "rain-low-confidence", "ModelInput": "e30=", "ModelPrediction": [1.0], "Metadata": [1]},
         "Argument Metadata must be of type dict"),
        ({"ConfigId": "rain-low-confidence", "ModelInput": "not base64!", "ModelPrediction": [1.0]},
         "ModelInput is not valid base64"),
    ],
)
def test_bad_feedback_message_gets_the_feedback_clients_wording(tmp_path, outputs, message, wording):
    connector, store = make_connector(tmp_path, outputs)
    connector.deliver("feedback/in", json.dumps(message).encode())
    [status] = outputs.wait_for(STATUS_TOPIC)
    connector.stop()
    assert status["response"] == {"status": "fail", "error_message": wording, "error": "ValueError"}
    assert store.uploads() == []


def test_bad_invocation_context_is_a_handled_error(tmp_path, outputs):
    connector, _ = make_connector(tmp_path, outputs)
    payload, func_err = connector.invoke(b"x", b"%%% not base64")
    connector.stop()
    assert func_err == "Handled"
    assert "client context" in json.loads(payload)["errorMessage"]


def test_unknown_config_id_fails_and_names_the_known_ones(tmp_path, outputs):
    connector, store = make_connector(tmp_path, outputs)
    connector.deliver("feedback/in", lambda_message(config_id="other-config"))
    [status] = outputs.wait_for(STATUS_TOPIC)
    connector.stop()
    assert status["response"]["status"] == "fail"
    assert status["response"]["error_message"] == (
        f"[RequestId: {status['id']}] ConfigId other-config is not in FeedbackConfigurationMap "
        "(it defines rain-low-confidence)"
    )
    assert store.uploads() == []


def test_guide_examples_of_each_sampling_strategy():
    draw = random.Random(1)
    assert SamplingStrategy("LEAST_CONFIDENCE", threshold=0.6).keeps([0.2, 0.2, 0.4, 0.2], draw)
    assert not SamplingStrategy("LEAST_CONFIDENCE", threshold=0.6).keeps([0.1, 0.9], draw)
    assert margin([0.3, 0.35, 0.34, 0.01]) == pytest.approx(0.01)
    assert SamplingStrategy("MARGIN", threshold=0.02).keeps([0.3, 0.35, 0.34, 0.01], draw)
    assert not SamplingStrategy("MARGIN", threshold=0.02).keeps([0.2, 0.8], draw)
    assert entropy([0.5, 0.25, 0.25]) == pytest.approx(1.03972, abs=1e-5)
    assert SamplingStrategy("ENTROPY", threshold=0.75).keeps([0.5, 0.25, 0.25], draw)
    assert not SamplingStrategy("ENTROPY", threshold=0.75).keeps([0.99, 0.01], draw)
    assert entropy([2.0, 1.0, 1.0]) == pytest.approx(entropy([0.5, 0.25, 0.25])), "normalised first"
    kept = [SamplingStrategy("RANDOM_SAMPLING", rate=0.25).keeps([], draw) for _ in range(4000)]
    assert 0.2 < sum(kept) / len(kept) < 0.3
    assert not any(SamplingStrategy("RANDOM_SAMPLING", rate=0.0).keeps([], draw) for _ in range(100))


def test_configured_strategy_drops_confident_samples(tmp_path, outputs):
    feedback_map = configuration_map(**{"least-confidence": {
        "s3-bucket-name": BUCKET, "content-type": "application/json",
        "sampling-strategy": {"strategy-name": "LEAST_CONFIDENCE", "threshold": 0.6},
    }})
    connector, store = make_connector(tmp_path, outputs, feedback_map)
    connector.deliver("feedback/in", lambda_message(0.9, config_id="least-confidence"))
    connector.deliver("feedback/in", lambda_message(0.55, config_id="least-confidence"))
    statuses = outputs.wait_for(STATUS_TOPIC, 2)
    connector.stop()
    assert statuses[0]["response"] == {"status": "sample_dropped_by_strategy"}
    assert statuses[1]["response"]["status"] == "success"
    assert "/" not in statuses[1]["response"]["s3_response"]["key"], "no s3-prefix, no file-ext: just the id"
    assert len(store.uploads()) == 1
    assert connector.stats()["dropped_by_strategy"] == 1
    assert "SampleNotUsed" in [m["request"]["metricData"]["metricName"] for m in outputs.on(METRICS_TOPIC)]


def test_request_limit_drops_requests_past_it_with_queue_full(tmp_path, outputs):
    connector, store = make_connector(tmp_path, outputs, limit="1")
    outputs.hold.set()
    connector.deliver("feedback/in", lambda_message(0.41))  # taken by the connector thread, which is held
    assert outputs.held.wait(20)
    connector.deliver("feedback/in", lambda_message(0.42))  # waits in the queue (1 of 1)
    connector.deliver("feedback/in", lambda_message(0.43))  # over the limit
    [dropped] = [m for m in outputs.on(STATUS_TOPIC) if m["response"]["status"] == "fail"]
    assert dropped["response"] == {
        "status": "fail",
        "error_message": "Request limit has been reached (max request: 1 ). Dropping request.",
        "error": "Queue.Full",
    }
    outputs.release.set()
    connector.stop()
    assert len(store.uploads()) == 2
    assert connector.stats()["throttled"] == 1


def test_stop_serves_every_queued_request(tmp_path, outputs):
    connector, store = make_connector(tmp_path, outputs, limit="0")
    for index in range(25):
        connector.deliver("feedback/in", lambda_message(0.4 + index / 100))
    connector.stop()
    assert len(store.uploads()) == 25
    assert len({entry["key"] for entry in store.uploads()}) == 25
    connector.deliver("feedback/in", lambda_message(0.45))  # after stop: served inline, not lost
    assert len(store.uploads()) == 26


@pytest.mark.parametrize(
    ("parameters", "detail"),
    [
        ({"FeedbackConfigurationMap": "{not json"}, "not well-formed JSON"),
        ({"FeedbackConfigurationMap": "{}"}, "one or more feedback configurations"),
        ({"FeedbackConfigurationMap": configuration_map(), "RequestLimit": "1000"}, "RequestLimit"),
        ({"FeedbackConfigurationMap": json.dumps({"x": {"s3-bucket-name": BUCKET, "content-type": "a/b"}})},
         "feedback configuration ID 'x'"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": "Upper_Case", "content-type": "a/b"}})},
         "s3-bucket-name 'Upper_Case'"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": BUCKET}})}, "content-type is required"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": BUCKET, "content-type": "a/b",
                                                          "s3-prefx": "p"}})}, "unknown key(s) s3-prefx"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": BUCKET, "content-type": "a/b",
                                                          "sampling-strategy": {"strategy-name": "MARGIN"}}})},
         "threshold None is required for MARGIN"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": BUCKET, "content-type": "a/b",
                                                          "sampling-strategy": {"strategy-name": "RANDOM_SAMPLING",
                                                                                "rate": 1.5}}})},
         "rate 1.5 is required for RANDOM_SAMPLING and must be 0.0 - 1.0"),
        ({"FeedbackConfigurationMap": json.dumps({"cfg": {"s3-bucket-name": BUCKET, "content-type": "a/b",
                                                          "sampling-strategy": {"strategy-name": "BEST"}}})},
         "strategy-name 'BEST'"),
    ],
)
def test_bad_parameters_are_refused_with_their_location(parameters, detail):
    with pytest.raises(ConnectorConfigError, match=re.escape(detail)) as caught:
        MLFeedbackSettings.from_connector(Connector("MLFeedback", ARN, parameters))
    assert detail in caught.value.message
    assert caught.value.location.startswith("Connectors[MLFeedback].Parameters.")


def test_prefix_that_would_leave_the_local_bucket_is_refused(tmp_path, outputs):
    feedback_map = json.dumps({"cfg": {"s3-bucket-name": BUCKET, "content-type": "a/b", "s3-prefix": "../../etc"}})
    group = Group(name="g", region="us-east-1", account_id="123456789012",
                  connectors=(Connector("MLFeedback", ARN, {"FeedbackConfigurationMap": feedback_map}),))
    with pytest.raises(ConnectorConfigError, match="cannot be stored locally"):
        build_registry(group, tmp_path, publish=outputs, cloud_available=False)


def test_with_aws_enabled_samples_go_to_s3(tmp_path, outputs):
    group = Group(name="g", region="us-east-1", account_id="123456789012",
                  connectors=(Connector("MLFeedback", ARN, {"FeedbackConfigurationMap": configuration_map()}),))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        registry = build_registry(group, tmp_path, publish=outputs, cloud_available=True, environ={AWS_ENV: "1"})
        assert registry.has_function(SDK_ARN)
        registry.deliver(ARN, "feedback/in", lambda_message(0.5))
        [status] = outputs.wait_for(STATUS_TOPIC)
        registry.stop()
        key = status["response"]["s3_response"]["key"]
        stored = s3.get_object(Bucket=BUCKET, Key=key)
        body = stored["Body"].read()
    assert json.loads(body) == READING
    assert stored["ContentType"] == "application/json"
    assert stored["Metadata"]["thing"] == "RainEdgeCore" and "publish-ts" in stored["Metadata"]
    assert status["response"]["s3_response"]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert not (tmp_path / "var" / "connectors" / "MLFeedback" / BUCKET).exists()


def test_missing_bucket_in_s3_is_a_fail_status_with_the_s3_error(tmp_path, outputs):
    group = Group(name="g", region="us-east-1", account_id="123456789012",
                  connectors=(Connector("MLFeedback", ARN, {"FeedbackConfigurationMap": configuration_map()}),))
    with mock_aws():
        registry = build_registry(group, tmp_path, publish=outputs, cloud_available=True, environ={AWS_ENV: "1"})
        registry.deliver(ARN, "feedback/in", lambda_message(0.5))
        [status] = outputs.wait_for(STATUS_TOPIC)
        registry.stop()
    assert status["response"]["status"] == "fail"
    assert status["response"]["error"] == "NoSuchBucket"
    assert "Failed to upload model input data due to exception. Model prediction will not be published." in (
        status["response"]["error_message"])
    assert outputs.on(PREDICTION_TOPIC) == []
