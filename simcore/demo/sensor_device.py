"""`simcore demo --sensor device`: the rain group's sensor as a Greengrass device process, as the classic v1
demo ran it (devices/sensor_device/sensor_device.py, AWSIoTPythonSDK, discovery at the core).

The stand-in's CA issues the device's certificate; its id goes into the template (`SensorMode=device`,
`SensorDeviceCertificateId`), so the core admits exactly that device. The process starts once the core
serves its devices, logs to `<root>/sensor-device.log`, and is stopped with SIGTERM (then SIGKILL).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from simcore.cloud.ca import IssuedCertificate, LocalCA
from simcore.demo.flags import REPO_ROOT
from simcore.parent_death import die_with_parent

DEVICE_NAME = "RainEdgeSensor"
PROGRAM = REPO_ROOT / "devices" / "sensor_device" / "sensor_device.py"
STOP_TIMEOUT_S = 10.0


def device_parameters(ca: LocalCA) -> tuple[IssuedCertificate, dict[str, str]]:
    """The device's certificate (issued now) and the template parameters that name it."""
    issued = ca.issue_thing(DEVICE_NAME, file_stem=DEVICE_NAME)
    return issued, {"SensorMode": "device", "SensorDeviceName": DEVICE_NAME,
                    "SensorDeviceCertificateId": issued.certificate_id}


@dataclass
class SensorDeviceProcess:
    """The running device process."""

    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, issued: IssuedCertificate, root_ca: Path, core_thing: str, discovery_port: int,
              sensor_source: str, replay_speed: float, log_path: Path) -> SensorDeviceProcess:
        """Start the device; it discovers the core on 127.0.0.1:`discovery_port`."""
        command = [sys.executable, str(PROGRAM), "--device", DEVICE_NAME, "--core-thing", core_thing,
                   "--cert", str(issued.cert_path), "--key", str(issued.key_path), "--root-ca", str(root_ca),
                   "--discovery-host", "127.0.0.1", "--discovery-port", str(discovery_port),
                   "--source", sensor_source, "--replay-speed", f"{replay_speed:g}"]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=die_with_parent())
        return cls(process, log_path)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
