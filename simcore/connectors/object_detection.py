"""The ML Object Detection connector (Greengrass v1, version 1; x86-64, ARMv7, Aarch64JTX2): accepted, not run.

The connector serves an SSD or YOLOv3 model compiled by SageMaker Neo, through the Neo deep learning runtime
(DLR) it bundled. simcore reads and checks its parameters as the guide gives them (the Image Classification
ones without `MLModelSageMakerJobArn`; `MLFeedbackConnectorConfigId` optional), then refuses to start the
group with an error that says what is missing: no DLR with its native library runs on this core's connector
runtime (dlr 1.10.0 on PyPI ships the Python package without `libdlr.so`) and no Neo-compiled model can be
made here (Neo is a cloud service; apache-tvm publishes no wheel for the connectors' Python 3.8).
"""

from __future__ import annotations

from simcore.connectors.image_classification import PLATFORMS, InferenceServiceSettings
from simcore.connectors.parameters import ConnectorConfigError
from simcore.group import Connector

NAMES = tuple(f"ObjectDetection{platform}" for platform in PLATFORMS)
VERSIONS = range(1, 2)
ALGO_TYPE = "object-detection"
MISSING = (
    "needs a SageMaker Neo-compiled model served by the Neo deep learning runtime (DLR), which this core "
    "cannot run: the dlr package on PyPI (1.10.0) has no libdlr.so native library, and no Neo or TVM "
    "compiler is available here to build a model for it. Use the ML Image Classification connector (MXNet) "
    "or serve the model from a Lambda of your own"
)


def settings_of(connector: Connector) -> InferenceServiceSettings:
    """The connector's parameters, checked; ConnectorConfigError names a missing or wrong one."""
    return InferenceServiceSettings.from_connector(connector, sagemaker_model=False, feedback=True)


def refuse(connector: Connector, settings: InferenceServiceSettings) -> ConnectorConfigError:
    """The error that stops the group: what this connector needs that the core lacks."""
    return ConnectorConfigError(
        f"{connector.name} (service GG-ML-INF-{ALGO_TYPE}-{settings.service_name}) {MISSING}",
        location=f"Connectors[{connector.id}].ConnectorArn",
    )
