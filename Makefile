# `make test` and `make demo` set everything up from scratch (a virtualenv in .venv) and work offline.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install system-deps test lint demo bench clean

# System packages the sandboxed code rewards use (bubblewrap). Skipped when already present or not root.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
				|| echo "could not install bubblewrap: code rewards fall back to rlimits-only isolation"; \
		else echo "bubblewrap not installed: code rewards fall back to rlimits-only isolation"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch and torchvision first, at the versions open_clip and TRL were tested with (a broken torchvision breaks
	# `from trl import GRPOTrainer`).
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e ".[dev,image,e2b,eval]"
	$(PY) -c "import torchvision; from trl import GRPOTrainer; from trl_ext import CoupledGRPOTrainer"
	touch $@

install: $(VENV)/.installed system-deps

lint: install
	$(VENV)/bin/ruff check trl_ext recipes tests benchmarks

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

demo: install
	$(VENV)/bin/accelerate launch --cpu recipes/coupled_grpo.py --config recipes/configs/coupled_grpo_tiny.yaml
	@echo "Trained model, tokenizer and model card: outputs/coupled-grpo-tiny/"
	@echo "TensorBoard logs: outputs/coupled-grpo-tiny/runs/  (tensorboard --logdir outputs/coupled-grpo-tiny/runs)"

bench: install
	$(PY) benchmarks/coupled_estimator.py

clean:
	rm -rf $(VENV) outputs
