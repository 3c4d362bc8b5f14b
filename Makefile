# The project's commands. Every target creates what it needs: nothing is installed by hand.
PY311 ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The Lambdas' own interpreter (a v1 core's newest runtime), when the machine has one that runs
# (a pyenv shim for a version that is not installed does not).
PY38 ?= $(shell for candidate in $$HOME/.pyenv/versions/3.8*/bin/python3.8 $$(command -v python3.8); do \
  "$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null && echo "$$candidate" && break; done)
VENV38 := .venv-py38

.PHONY: venv venv38 venv-checkov users test test-fast lint demo model bench package screenshot clean

$(VENV)/.installed: requirements.txt requirements-dev.txt lambdas/requirements.txt
	$(PY311) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.runtime: requirements.txt lambdas/requirements.txt
	$(PY311) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# A Python 3.8 environment for the Lambdas, as a real core had packages installed system-wide.
$(VENV38)/.installed: lambdas/requirements.txt
	@if [ -n "$(PY38)" ]; then \
	  $(PY38) -m venv $(VENV38) && $(VENV38)/bin/pip install -q -r lambdas/requirements.txt pytest==8.3.5 pytest-timeout==2.4.0 && touch $@; \
	else echo "no python3.8 on this machine: the Lambdas run on simcore's own interpreter"; fi

venv38: $(VENV38)/.installed

# checkov pins boto3 and packaging versions that clash with the core's: it gets a venv of its own.
.venv-checkov/.installed: cloudformation/requirements-checkov.txt
	$(PY311) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q -r cloudformation/requirements-checkov.txt
	touch $@

venv-checkov: .venv-checkov/.installed

# As root, a core runs Lambdas as ggc_user/ggc_group (as a v1 core does): create them as the EC2 bootstrap
# does, and let ggc_group pass through the folders above the interpreters (a venv under a 0700 /root).
# Not root: nothing to do, the Lambdas run as the invoking user.
users:
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m simcore setup-users; fi

# The Lambdas' unit tests run under Python 3.8 too (a v1 core's newest runtime), and vermin checks
# statically that the Lambdas and the runtime modules need nothing newer.
LAMBDA_TESTS := tests/test_sensor_*.py tests/test_inference_*.py tests/test_features.py tests/test_tendency.py

test: venv venv38 venv-checkov
	$(MAKE) --no-print-directory users
	$(PY) -m ruff check .
	$(VENV)/bin/vermin -t=3.8- --no-tips --violations lambdas/ simcore/lambda_side/
	@if [ -x $(VENV38)/bin/python ]; then \
	  echo "== Lambda unit tests under Python 3.8"; \
	  $(VENV38)/bin/python -m pytest -q -p no:cacheprovider $(LAMBDA_TESTS); \
	fi
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(MAKE) --no-print-directory users
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .

demo: $(VENV)/.runtime venv38
	$(MAKE) --no-print-directory users
	$(PY) -m simcore demo $(DEMO_ARGS)

# `make model MODEL_ARGS="--from-s3 s3://<bucket>/readings/ [--s3-endpoint-url <url>]"` adds the readings a core
# exported through its stream manager to training (resources/rain_model/exported.py).
model: venv
	$(PY) resources/rain_model/train.py --out resources/rain_model/dist $(MODEL_ARGS)

bench: venv
	$(MAKE) --no-print-directory users
	$(PY) bench/run.py

package: venv
	$(PY) -m group.package $(PACKAGE_ARGS)

# Renew the README's screenshot of the demo page (headless Chromium during a real replay).
screenshot: venv
	DEMO_SCREENSHOT=docs/demo-screenshot.png $(PY) -m pytest -q tests/test_demo_web_browser.py

clean:
	rm -rf .simcore .simcore-demo .simcore-cloud build
