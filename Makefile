# The project's commands. Every target creates what it needs: nothing is installed by hand.
PY311 ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The Lambdas' own interpreter (a v1 core's newest runtime), when the machine has one that runs
# (a pyenv shim for a version that is not installed does not).
PY38 ?= $(shell for candidate in $$HOME/.pyenv/versions/3.8*/bin/python3.8 $$(command -v python3.8); do \
  "$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 8)' 2>/dev/null && echo "$$candidate" && break; done)
VENV38 := .venv-py38
# The ML inference connectors' runtime: Python 3.8 with MXNet (requirements-mxnet.txt).
VENV_MXNET := .venv-mxnet

.PHONY: venv venv38 venv-mxnet digits-model venv-checkov users debian-tools test test-fast lint demo model bench package screenshot clean

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
# Makefile too: the test-only packages (pytest, boto3 for the TES fixture Lambdas) are listed below.
$(VENV38)/.installed: lambdas/requirements.txt Makefile
	@if [ -n "$(PY38)" ]; then \
	  $(PY38) -m venv $(VENV38) && $(VENV38)/bin/pip install -q -r lambdas/requirements.txt pytest==8.3.5 pytest-timeout==2.4.0 boto3==1.37.38 && touch $@; \
	else echo "no python3.8 on this machine: the Lambdas run on simcore's own interpreter"; fi

venv38: $(VENV38)/.installed

# The Image Classification connector's model server runs here (simcore/connectors/image_classification.py).
$(VENV_MXNET)/.installed: requirements-mxnet.txt
	@if [ -n "$(PY38)" ]; then \
	  $(PY38) -m venv $(VENV_MXNET) && $(VENV_MXNET)/bin/pip install -q -r requirements-mxnet.txt && touch $@; \
	else echo "no python3.8 on this machine: the ML inference connectors have no model server runtime"; fi

venv-mxnet: $(VENV_MXNET)/.installed

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

# The EC2 boot test (tests/test_ec2_bootstrap.py) builds a Debian root with mmdebstrap, Debian's own tool:
# as root, install it when missing, as .ci/run does (not root, the test cannot chroot and says so).
debian-tools:
	@if [ "$$(id -u)" = 0 ] && ! command -v mmdebstrap >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap; \
	fi

# The Lambdas' unit tests run under Python 3.8 too (a v1 core's newest runtime), and vermin checks
# statically that the Lambdas and the runtime modules need nothing newer.
LAMBDA_TESTS := tests/test_sensor_*.py tests/test_inference_*.py tests/test_features.py tests/test_tendency.py

test: venv venv38 venv-mxnet venv-checkov
	$(MAKE) --no-print-directory users debian-tools
	$(PY) -m ruff check .
	$(VENV)/bin/vermin -t=3.8- --no-tips --violations lambdas/ simcore/lambda_side/ \
	  simcore/connectors/image_classification_worker.py resources/digits_model/train.py
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

# Retrain the Image Classification connector's digits model (MXNet on the connector runtime; reproducible).
digits-model: venv-mxnet
	$(VENV_MXNET)/bin/python resources/digits_model/train.py --out resources/digits_model/dist

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
