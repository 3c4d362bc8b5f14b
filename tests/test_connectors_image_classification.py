"""The ML Image Classification connector on a real core: MXNet 1.9.1 on Python 3.8 serving the committed digits
model, reached by a Lambda that makes the Greengrass ML SDK's own calls through the runtime's `ipc_facade`.

The Lambda (tests/lambdas_fixtures/ml_client) runs in a real worker (the Lambdas' Python 3.8 venv when it is
there); the connector's model server runs on `.venv-mxnet` (`make venv-mxnet`). Every answer the SDK can give
is checked: the probabilities, each refused request (raised as GreengrassInferenceException), an address
nobody serves (GreengrassDependencyException), the timeout and the memory limit, the feedback sample.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import tarfile
import zlib
from pathlib import Path

import pytest
from lambdas_fixtures.harness import PY38, IPCClient, function_arn, interpreters, make_function, make_group

from simcore.connectors import image_classification as ic
from simcore.connectors import object_detection as od
from simcore.connectors.parameters import ConnectorConfigError
from simcore.connectors.registry import SUPPORTED_VERSIONS, build_registry
from simcore.core.assemble import Core
from simcore.defaults import ML_CONNECTOR_RUNTIME_ENV
from simcore.group import Connector, Resource

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "resources" / "digits_model" / "dist"
SAMPLES = DIST / "samples"
LABELS = json.loads((SAMPLES / "labels.json").read_text())
CLIENT = function_arn("ml-client")
TESTER = function_arn("test-harness")
IC_ARN = "arn:aws:greengrass:us-east-1::/connectors/ImageClassificationx86-64/versions/2"
FEEDBACK_ARN = "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1"
SERVICE = "digits"
BUCKET = "digit-samples"
KIND = "py38" if PY38.exists() else "py311"
RESOURCE = Resource(id="digits-model", name="digits", kind="ml_s3", source="digits-model.tar.gz",
                    destination_path="/ml/digits")


def parameters(**overrides: str) -> dict[str, str]:
    values = {
        "MLModelDestinationPath": "/ml/digits",
        "MLModelResourceId": "digits-model",
        "MLModelSageMakerJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/digits-2026",
        "LocalInferenceServiceName": SERVICE,
        "LocalInferenceServiceTimeoutSeconds": "2",
        "LocalInferenceServiceMemoryLimitKB": "500000",
    }
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    """The committed model archive, extracted as deploy extracts an ML resource."""
    folder = tmp_path_factory.mktemp("digits-model")
    with tarfile.open(DIST / "digits-model.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory, digits_model):
    """A core with the client Lambda, the Image Classification connector (feedback on) and ML Feedback."""
    root = tmp_path_factory.mktemp("ggc")
    feedback_map = {"digits-low": {"s3-bucket-name": BUCKET, "s3-prefix": "digits", "content-type": "image/png"}}
    group = make_group(
        [make_function("ml-client", "ml_client", "ml_client.function_handler", timeout_s=30),
         make_function("test-harness", "ml_client", "ml_client.function_handler"),
         make_function("ml-service", "ml_client", "ml_client.crash_handler", timeout_s=30)],
        connectors=(Connector("IC", IC_ARN, parameters(MLFeedbackConnectorConfigId="digits-low")),
                    Connector("Feedback", FEEDBACK_ARN, {"FeedbackConfigurationMap": json.dumps(feedback_map)})),
        resources=(RESOURCE,),
    )
    cores: list[Core] = []
    registry = build_registry(group, root, publish=lambda topic, payload, source: cores[0].publish(
        topic, payload, source=source), cloud_available=False, resource_dirs={RESOURCE.id: digits_model})
    core = Core(group, runtime_root=root, connectors=registry, interpreters=interpreters(KIND))
    cores.append(core)
    core.start()
    yield core, registry, root
    core.stop()
    registry.stop()


def call_lambda(core: Core, event: dict) -> dict:
    """Invoke the client Lambda (RequestResponse through the real IPC client) and return its answer."""
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    invocation_id = client.post_work(CLIENT, json.dumps(event).encode(), b"", "RequestResponse")
    result = client.get_work_result(CLIENT, invocation_id)
    assert result.func_err == "", result.payload
    return json.loads(result.payload)


def infer(core: Core, image: bytes, **fields) -> dict:
    event = {"call": "infer", "service_name": SERVICE, "image_b64": base64.b64encode(image).decode(), **fields}
    return call_lambda(core, event)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def huge_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels: a few KB that would decode to side² pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes((side + 7) // 8)) * side
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def error_of(outcome: dict) -> dict:
    assert outcome["raised"] == "GreengrassInferenceException", outcome
    return json.loads(outcome["payload"])


def test_the_ml_sdk_call_classifies_jpeg_and_png_digits(served):
    core, registry, _ = served
    for name, label in sorted(LABELS.items()):
        content_type = "image/png" if name.endswith(".png") else "image/jpeg"
        outcome = infer(core, sample(name), content_type=content_type, accept="application/json")
        predictions = outcome["predictions"]
        assert len(predictions) == 10, outcome
        assert sum(predictions) == pytest.approx(1.0, abs=1e-4)
        assert max(range(10), key=predictions.__getitem__) == label, (name, outcome["body"])
        assert outcome["body"].startswith("[") and " " not in outcome["body"]
        assert outcome["content_type"] == "application/json"
    stats = registry.status()["connectors"][IC_ARN]
    assert stats["succeeded"] >= len(LABELS) and stats["worker_starts"] >= 1


def test_refused_requests_raise_greengrass_inference_exception(served):
    core, _, _ = served
    png = sample("digit-00.png")
    cases = {
        "no content type": ({}, png, "ContentType is required"),
        "unsupported type": ({"content_type": "image/gif"}, png, "'image/gif' is not supported"),
        "a type of 5,000 characters": ({"content_type": "image/" + "x" * 5000}, png, "is not supported"),
        "type and bytes disagree": ({"content_type": "image/jpeg"}, png, "not a JPEG image"),
        "not an image": ({"content_type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "cannot be decoded"),
        "too many pixels to decode": ({"content_type": "image/png"}, huge_png(8192), "8192x8192 pixels"),
    }
    for case, (fields, body, wording) in cases.items():
        error = error_of(infer(core, body, **fields))
        assert error["errorType"] == "InvalidInputException", (case, error)
        assert wording in error["errorMessage"], (case, error)
    # The service still serves after refusing.
    assert "predictions" in infer(core, png, content_type="image/png")


def test_a_service_nobody_runs_raises_greengrass_dependency_exception(served):
    core, _, _ = served
    outcome = infer(core, sample("digit-00.png"), content_type="image/png", service_name="no-such-service")
    assert outcome["raised"] == "GreengrassDependencyException"
    assert "404" in outcome["message"] and "GG-ML-INF-image-classification-no-such-service" in outcome["message"]


def test_the_facade_maps_each_function_error_as_the_ml_sdk_expects(served):
    core, _, _ = served
    service = function_arn("ml-service")

    def call(event: dict) -> dict:
        return call_lambda(core, {"call": "raw", "address": service, "payload": json.dumps(event)})

    assert call({"hello": 1}) == {"response": {"echo": {"hello": 1}}}  # FunctionError "": the response
    handled = call({"raise": True})  # Handled: the error response, which the SDK raises as its exception
    assert handled["raised"] == "GreengrassInferenceException" and "the service refused" in handled["payload"]
    unhandled = call({"crash": True})  # Unhandled: GreengrassRuntimeException, the SDK's dependency exception
    assert unhandled == {"raised": "GreengrassDependencyException", "message": "Unhandled"}


def test_each_classified_image_is_a_feedback_sample(served):
    core, registry, root = served
    feedback = registry.get(FEEDBACK_ARN)
    assert feedback.wait_idle(timeout=30)  # the samples of earlier tests are stored first
    before = feedback.stats().get("uploaded", 0)
    infer(core, sample("digit-02.png"), content_type="image/png")
    assert feedback.wait_idle(timeout=30)
    assert feedback.stats()["uploaded"] == before + 1
    stored = sorted((root / "var" / "connectors" / "MLFeedback" / BUCKET / "digits").iterdir())
    assert sample("digit-02.png") in [path.read_bytes() for path in stored if path.suffix != ".json"]


def test_the_feedback_client_call_reaches_the_feedback_connector(served):
    core, registry, _ = served
    feedback = registry.get(FEEDBACK_ARN)
    assert feedback.wait_idle(timeout=30)  # the samples of earlier tests are stored first
    before = feedback.stats().get("uploaded", 0)
    outcome = call_lambda(core, {"call": "feedback", "config_id": "digits-low", "prediction": [0.4, 0.6],
                                 "input_b64": base64.b64encode(b"model input").decode()})
    assert "response" in outcome, outcome
    assert feedback.wait_idle(timeout=30) and feedback.stats()["uploaded"] == before + 1
    refused = call_lambda(core, {"call": "feedback", "config_id": "-bad", "prediction": [1.0],
                                 "input_b64": base64.b64encode(b"x").decode()})
    assert refused["raised"] == "GreengrassInferenceException" and "ConfigId" in refused["payload"]


def test_a_request_past_the_timeout_is_answered_and_the_model_server_restarted(served):
    core, registry, _ = served
    infer(core, sample("digit-00.png"), content_type="image/png")  # the server is up and has loaded
    stats = registry.status()["connectors"][IC_ARN]
    stuck_pid, starts = stats["worker_pid"], stats["worker_starts"]
    os.kill(stuck_pid, signal.SIGSTOP)  # a server that never answers
    error = error_of(infer(core, sample("digit-00.png"), content_type="image/png"))
    assert error["errorType"] == "TimeoutException" and "LocalInferenceServiceTimeoutSeconds" in error["errorMessage"]
    assert not Path(f"/proc/{stuck_pid}").exists() or "zombie" in Path(f"/proc/{stuck_pid}/status").read_text()
    outcome = infer(core, sample("digit-00.png"), content_type="image/png")
    assert max(range(10), key=outcome["predictions"].__getitem__) == LABELS["digit-00.png"]
    stats = registry.status()["connectors"][IC_ARN]
    assert stats["worker_starts"] == starts + 1 and stats["worker_pid"] != stuck_pid


def registry_for(group, tmp_path: Path, model_dir: Path):
    return build_registry(group, tmp_path / "ggc", publish=lambda *args, **kwargs: None, cloud_available=False,
                          resource_dirs={RESOURCE.id: model_dir})


def invoke_service(registry, image: bytes, content_type: str = "image/png") -> tuple[dict, str]:
    address = f"arn:aws:lambda:us-east-1:aws:function:{ic.service_function_name(ic.ALGO_TYPE, SERVICE)}"
    context = base64.b64encode(json.dumps({"custom": {"Content-Type": content_type}}).encode())
    payload, function_error = registry.invoke(address, image, context)
    return json.loads(payload), function_error


def test_a_model_server_over_its_memory_limit_is_stopped_and_the_request_refused(tmp_path, digits_model):
    # MXNet alone holds far more than 40 MB resident: the limit is passed as soon as the model is loaded.
    limited = Connector("IC", IC_ARN, parameters(LocalInferenceServiceMemoryLimitKB="40000"))
    group = make_group([], connectors=(limited,), resources=(RESOURCE,))
    registry = registry_for(group, tmp_path, digits_model)
    try:
        answer, function_error = invoke_service(registry, sample("digit-00.png"))
        assert function_error == "Handled" and answer["errorType"] == "MemoryLimitExceeded", answer
        assert "40000 KB" in answer["errorMessage"]
        stats = registry.status()["connectors"][IC_ARN]
        assert stats["worker_kills.MemoryLimitExceeded"] == 1
    finally:
        registry.stop()


def test_a_missing_model_is_answered_with_model_not_found(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    group = make_group([], connectors=(Connector("IC", IC_ARN, parameters()),), resources=(RESOURCE,))
    registry = registry_for(group, tmp_path, empty)
    try:
        for _ in range(2):  # the second is answered from the first failure, without a new server
            answer, function_error = invoke_service(registry, sample("digit-00.png"))
            assert function_error == "Handled" and answer["errorType"] == "ModelNotFoundException", answer
            assert "image-classification-symbol.json is missing" in answer["errorMessage"]
        assert registry.status()["connectors"][IC_ARN]["worker_starts"] == 1
    finally:
        registry.stop()


@pytest.mark.parametrize("platform", ic.PLATFORMS)
@pytest.mark.parametrize("version", [1, 2])
def test_every_image_classification_arn_and_its_parameters_are_accepted(platform, version):
    arn = f"arn:aws:greengrass:eu-west-1::/connectors/ImageClassification{platform}/versions/{version}"
    extra = {"GPUAcceleration": "GPU"} if platform == "Aarch64JTX2" else {}
    if version == 2:
        extra["MLFeedbackConnectorConfigId"] = "config-1"
    connector = Connector("IC", arn, parameters(**extra))
    assert version in SUPPORTED_VERSIONS[connector.name]
    settings = ic.InferenceServiceSettings.from_connector(connector)
    assert (settings.service_name, settings.timeout_s, settings.memory_limit_kb) == (SERVICE, 2, 500000)
    assert settings.gpu_acceleration == extra.get("GPUAcceleration")
    assert settings.feedback_config_id == extra.get("MLFeedbackConnectorConfigId")


@pytest.mark.parametrize(("arn_tail", "overrides", "wording"), [
    ("x86-64/versions/2", {"LocalInferenceServiceTimeoutSeconds": "0"}, "LocalInferenceServiceTimeoutSeconds"),
    ("x86-64/versions/2", {"LocalInferenceServiceMemoryLimitKB": "lots"}, "LocalInferenceServiceMemoryLimitKB"),
    ("x86-64/versions/2", {"LocalInferenceServiceName": "-x"}, "LocalInferenceServiceName"),
    ("x86-64/versions/2", {"MLModelSageMakerJobArn": "arn:aws:s3:::bucket"}, "MLModelSageMakerJobArn"),
    ("x86-64/versions/1", {"MLFeedbackConnectorConfigId": "config-1"}, "unknown parameter"),
    ("Aarch64JTX2/versions/2", {}, "GPUAcceleration is required"),
    ("ARMv7/versions/2", {"GPUAcceleration": "TPU"}, "GPUAcceleration"),
])
def test_bad_parameters_are_refused_naming_the_parameter(arn_tail, overrides, wording):
    connector = Connector("IC", f"arn:aws:greengrass:us-east-1::/connectors/ImageClassification{arn_tail}",
                          parameters(**overrides))
    with pytest.raises(ConnectorConfigError, match=wording):
        ic.InferenceServiceSettings.from_connector(connector)


@pytest.mark.parametrize(("connectors", "resource_dirs", "wording"), [
    ((Connector("IC", IC_ARN, parameters(MLModelResourceId="other")),), {}, "not an ML resource of the group"),
    ((Connector("IC", IC_ARN, parameters(MLModelDestinationPath="/elsewhere")),), {}, "not the destination path"),
    ((Connector("IC", IC_ARN, parameters()),), {}, "is not deployed"),
    ((Connector("IC", IC_ARN, parameters(MLFeedbackConnectorConfigId="c1")),), {"digits-model": Path("/tmp")},
     "needs the ML Feedback connector"),
    ((Connector("IC", IC_ARN, parameters(MLFeedbackConnectorConfigId="c1")),
      Connector("F", FEEDBACK_ARN, {"FeedbackConfigurationMap": {"c2": {"s3-bucket-name": "bkt",
                                                                        "content-type": "image/png"}}})),
     {"digits-model": Path("/tmp")}, "not in the ML Feedback connector's FeedbackConfigurationMap"),
])
def test_a_connector_that_cannot_reach_its_model_or_feedback_is_refused_before_starting(
        tmp_path, connectors, resource_dirs, wording):
    group = make_group([], connectors=connectors, resources=(RESOURCE,))
    with pytest.raises(ConnectorConfigError, match=wording):
        build_registry(group, tmp_path, publish=lambda *args, **kwargs: None, cloud_available=False,
                       resource_dirs=resource_dirs)


def test_the_service_address_is_the_ml_sdk_one():
    assert ic.service_function_name("image-classification", "digits") == "GG-ML-INF-image-classification-digits"
    for arn in ("arn:aws:lambda:us-east-1:aws:function:GG-ML-INF-image-classification-digits",
                "arn:aws-cn:lambda:cn-north-1:aws:function:GG-ML-INF-image-classification-digits:1"):
        assert ic.invoked_function_name(arn) == "GG-ML-INF-image-classification-digits"
    assert ic.invoked_function_name("arn:aws:lambda:us-east-1:123456789012:function:GG-ML-INF-x-y") is None


def detection_parameters(**overrides: str) -> dict[str, str]:
    values = parameters(**overrides)
    del values["MLModelSageMakerJobArn"]  # Object Detection serves a Neo-compiled S3 model
    return values


@pytest.mark.parametrize("platform", ic.PLATFORMS)
def test_object_detection_parameters_are_accepted_then_the_group_is_refused_saying_what_is_missing(
        platform, tmp_path, digits_model):
    arn = f"arn:aws:greengrass:us-east-1::/connectors/ObjectDetection{platform}/versions/1"
    extra = {"GPUAcceleration": "CPU"} if platform == "Aarch64JTX2" else {}
    connector = Connector("OD", arn, detection_parameters(MLFeedbackConnectorConfigId="", **extra))
    assert 1 in SUPPORTED_VERSIONS[connector.name]
    settings = od.settings_of(connector)
    assert (settings.service_name, settings.sagemaker_job_arn, settings.feedback_config_id) == (SERVICE, "", None)
    group = make_group([], connectors=(connector,), resources=(RESOURCE,))
    with pytest.raises(ConnectorConfigError, match="Neo-compiled model .* no libdlr.so") as refused:
        registry_for(group, tmp_path, digits_model)
    assert refused.value.location == "Connectors[OD].ConnectorArn"
    assert f"GG-ML-INF-object-detection-{SERVICE}" in refused.value.message


def test_object_detection_refuses_image_classification_only_parameters():
    connector = Connector("OD", "arn:aws:greengrass:us-east-1::/connectors/ObjectDetectionx86-64/versions/1",
                          parameters())
    with pytest.raises(ConnectorConfigError, match="unknown parameter.*MLModelSageMakerJobArn"):
        od.settings_of(connector)


def test_a_missing_connector_runtime_is_answered_with_the_fix(tmp_path, digits_model):
    group = make_group([], connectors=(Connector("IC", IC_ARN, parameters()),), resources=(RESOURCE,))
    registry = build_registry(group, tmp_path / "ggc", publish=lambda *args, **kwargs: None, cloud_available=False,
                              resource_dirs={RESOURCE.id: digits_model},
                              environ={ML_CONNECTOR_RUNTIME_ENV: str(tmp_path / "no-such-python")})
    try:
        answer, function_error = invoke_service(registry, sample("digit-00.png"))
        assert function_error == "Handled" and answer["errorType"] == "InferenceServiceException"
        assert "no-such-python does not exist" in answer["errorMessage"] and "make venv-mxnet" in answer["errorMessage"]
        assert registry.status()["connectors"][IC_ARN].get("worker_starts", 0) == 0
    finally:
        registry.stop()
