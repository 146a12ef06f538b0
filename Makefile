# `make test` and `make demo` set everything up from scratch (a virtualenv in .venv) and work offline.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install system-deps web-assets test lint demo demo-aescoder-tiny demo-coupled-grpo demo-aescoder-pipeline bench clean

HTMLHINT_VERSION := 1.9.2
# Where the real htmlhint CLI lives (the lint parity tests read the same variable); the vendored CDN libraries go to
# $TRL_EXT_WEB_VENDOR, by default ~/.cache/trl_ext/web_vendor.
export TRL_EXT_HTMLHINT_DIR ?= $(HOME)/.cache/trl_ext/htmlhint

# System packages: bubblewrap for the sandboxed code rewards (optional: they fall back to rlimits-only isolation),
# and Debian's Chromium + fonts for the web-page rewards (required: Playwright drives it, its own download does not
# work offline). Skipped when already present.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
				|| echo "could not install bubblewrap: code rewards fall back to rlimits-only isolation"; \
		else echo "bubblewrap not installed: code rewards fall back to rlimits-only isolation"; fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				chromium fonts-liberation fonts-dejavu-core >/dev/null; \
		else echo "Chromium is missing: install Debian's chromium (browser tests will be skipped)"; fi; \
	fi

# Local copies of CDN libraries served to rendered pages (npm, pinned in trl_ext/web/vendor_packages.json), and the
# real htmlhint CLI that the lint parity tests compare against.
web-assets: $(VENV)/.installed
	$(PY) -m trl_ext.web.vendor install
	@if [ ! -x "$(TRL_EXT_HTMLHINT_DIR)/node_modules/.bin/htmlhint" ]; then \
		npm install --prefix "$(TRL_EXT_HTMLHINT_DIR)" htmlhint@$(HTMLHINT_VERSION) --no-audit --no-fund --loglevel=error; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch and torchvision first, at the versions open_clip and TRL were tested with (a broken torchvision breaks
	# `from trl import GRPOTrainer`).
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e ".[dev,image,e2b,eval,web,deepspeed]"
	$(PY) -c "import torchvision, playwright; from trl import GRPOTrainer; from trl_ext import CoupledGRPOTrainer"
	touch $@

install: $(VENV)/.installed system-deps web-assets

lint: install
	$(VENV)/bin/ruff check trl_ext recipes tests benchmarks

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider

# What a newcomer wants to see, in about 5 minutes on 2 CPU cores: the tiny model learns short outlines of the bundled
# AesCode pages (SFT), GRPO with the whole AesCoder reward (lint gate on, real Chromium, offline judge, GUI agent) raises
# its reward, and the report prints the reward per term of the first and last steps, plots it and draws a before/after
# contact sheet of the best pages. One torch thread: generation with two threads on two busy cores was 10x slower.
DEMO_DIR ?= outputs/demo
demo: install
	@echo "== 1/3 SFT: the tiny model learns outlines of 8 bundled AesCode webpages, clean and with a lint fault"
	time OMP_NUM_THREADS=1 $(VENV)/bin/accelerate launch --cpu --num_processes 1 recipes/aescoder_sft.py \
		--config recipes/configs/aescoder_sft_demo.yaml --output_dir $(DEMO_DIR)/sft
	@echo "== 2/3 GRPO from the SFT model: lint gate on (it pays the clean pages), real Chromium, offline design judge, GUI agent"
	time OMP_NUM_THREADS=1 $(VENV)/bin/accelerate launch --cpu --num_processes 1 recipes/aescoder_grpo.py \
		--config recipes/configs/aescoder_grpo_demo.yaml --model_name_or_path $(DEMO_DIR)/sft --output_dir $(DEMO_DIR)/grpo
	@echo "== 3/3 Report: reward per term, first vs last steps"
	time $(PY) recipes/aescoder_demo_report.py $(DEMO_DIR)/grpo
	@echo "Models and cards: $(DEMO_DIR)/sft/, $(DEMO_DIR)/grpo/; pages of every step (screenshot, HTML, scores): $(DEMO_DIR)/grpo/screenshots/"
	@echo "TensorBoard logs (rewards, failures, screenshots): tensorboard --logdir $(DEMO_DIR)/grpo/runs"

# The tiny GRPO recipe alone (random-weight model, lint gate off): the pipeline, not learning.
demo-aescoder-tiny: install
	$(VENV)/bin/accelerate launch --cpu recipes/aescoder_grpo.py --config recipes/configs/aescoder_grpo_tiny.yaml
	@echo "Trained model, tokenizer and model card: outputs/aescoder-grpo-tiny/"

demo-coupled-grpo: install
	$(VENV)/bin/accelerate launch --cpu recipes/coupled_grpo.py --config recipes/configs/coupled_grpo_tiny.yaml
	@echo "Trained model, tokenizer and model card: outputs/coupled-grpo-tiny/"

# The whole AesCoder pipeline offline: SFT on 40 bundled AesCode-format rows, then GRPO from the SFT weights.
demo-aescoder-pipeline: install
	$(VENV)/bin/accelerate launch --cpu recipes/aescoder_sft.py --config recipes/configs/aescoder_sft_tiny.yaml
	$(VENV)/bin/accelerate launch --cpu recipes/aescoder_grpo.py --config recipes/configs/aescoder_grpo_tiny.yaml \
		--model_name_or_path outputs/aescoder-sft-tiny --output_dir outputs/aescoder-grpo-from-sft-tiny
	@echo "SFT model and card: outputs/aescoder-sft-tiny/; GRPO model, card, screenshots: outputs/aescoder-grpo-from-sft-tiny/"

bench: install
	$(PY) benchmarks/coupled_estimator.py
	$(PY) benchmarks/code_reward.py
	$(PY) benchmarks/agentic_reward.py
	$(PY) benchmarks/html_lint.py
	$(PY) benchmarks/image_rewards.py
	$(PY) benchmarks/image_sampling.py

clean:
	rm -rf $(VENV) outputs
