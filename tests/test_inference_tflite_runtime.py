"""On Python 3.8 (a v1 core's newest Lambda runtime) the rain model runs on LiteRT through `tflite_runtime`,
not on the NumPy fallback, and both give the same probabilities.

Collected by both test runs: under the Lambdas' Python 3.8 venv (`make test` runs tests/test_inference_*.py
there) it checks the interpreter in-process; under simcore's Python 3.11 it runs the same check in the
3.8 venv as a subprocess, so the main run proves it too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rain_inference.features import build_features
from rain_inference.model import litert_package, load_model

REPO = Path(__file__).resolve().parents[1]
PY38 = REPO / ".venv-py38" / "bin" / "python"
READINGS = [
    {"temperature": 12.0, "humidity": 60.0, "pressure": 1020.0, "pressure_tendency_3h": 0.5},
    {"temperature": 8.0, "humidity": 97.0, "pressure": 995.0, "pressure_tendency_3h": -4.0},
    {"temperature": 20.0, "humidity": 80.0, "pressure": 1005.0, "pressure_tendency_3h": -1.5},
    {"temperature": -2.0, "humidity": 90.0, "pressure": 1012.0, "pressure_tendency_3h": 0.0},
]
ROWS = [build_features(reading) for reading in READINGS]

CHECK = """
import json, sys
sys.path.insert(0, sys.argv[2])
from rain_inference.model import load_model
rows = json.loads(sys.argv[3])
litert, numpy = load_model(sys.argv[1]), load_model(sys.argv[1], backend="numpy")
print(json.dumps({"version": list(sys.version_info[:2]), "backend": litert.backend, "runtime": litert.runtime,
                  "litert": litert.predict_many(rows), "numpy": numpy.predict_many(rows)}))
"""


def test_python_3_8_runs_the_model_on_tflite_runtime_matching_numpy(model_dir):
    if sys.version_info[:2] == (3, 8):
        assert litert_package() == "tflite_runtime"
        litert, numpy = load_model(str(model_dir)), load_model(str(model_dir), backend="numpy")
        report = {"version": [3, 8], "backend": litert.backend, "runtime": litert.runtime,
                  "litert": litert.predict_many(ROWS), "numpy": numpy.predict_many(ROWS)}
    else:
        assert PY38.exists(), "the Lambdas' Python 3.8 venv is missing: make venv38"
        code = REPO / "lambdas" / "rain_inference"
        output = subprocess.run([str(PY38), "-c", CHECK, str(model_dir), str(code), json.dumps(ROWS)],
                                capture_output=True, text=True, timeout=120, check=True).stdout
        report = json.loads(output.strip().splitlines()[-1])
    assert report["version"] == [3, 8]
    assert (report["backend"], report["runtime"]) == ("litert", "tflite_runtime")
    assert report["litert"] == pytest.approx(report["numpy"], abs=1e-5)
    assert all(0.0 < p < 1.0 for p in report["litert"])
