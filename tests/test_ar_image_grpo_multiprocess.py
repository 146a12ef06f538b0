"""Real 2-process CPU runs (gloo) of ARImageGRPOTrainer and the AR-GRPO recipes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trl_ext.testing_image import make_tiny_llamagen, make_tiny_vq, save_tiny_image_models

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}


def torchrun(*args, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_stay_in_sync_t2i(tmp_path):
    # t2i exercises the most: captions encoded per rank, guided log-probs (both branches), a reference model.
    model = make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=8)
    gpt_path, vq_path = save_tiny_image_models(model, make_tiny_vq(), tmp_path / "models")
    result = torchrun(ROOT / "tests" / "scripts" / "ddp_ar_image.py", "t2i", gpt_path, vq_path, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = torch.load(tmp_path / "out" / "rank0.pt"), torch.load(tmp_path / "out" / "rank1.pt")
    assert rank0["world_size"] == 2
    # Each rank sampled different images; only synchronised gradients keep the weights identical.
    for name, param in rank0["params"].items():
        torch.testing.assert_close(param, rank1["params"][name], msg=name)
    before = dict(model.named_parameters())
    assert all(not torch.equal(p, before[n]) for n, p in rank0["params"].items())


@pytest.mark.slow
def test_c2i_recipe_runs_under_torchrun(tmp_path):
    result = torchrun(
        "recipes/ar_grpo_c2i.py",
        "--config",
        "recipes/configs/ar_grpo_c2i_tiny.yaml",
        "--output_dir",
        tmp_path,
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "README.md").exists()
    assert not (tmp_path / "tokenizer.json").exists()  # a class-conditional generator has no tokenizer to save


@pytest.mark.slow
def test_t2i_recipe_runs_under_accelerate_launch(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "1",
        "recipes/ar_grpo_t2i.py",
        "--config",
        "recipes/configs/ar_grpo_t2i_tiny.yaml",
        "--output_dir",
        str(tmp_path),
        "--max_steps",
        "10",
        "--logging_steps",
        "5",
        "--log_images_steps",
        "5",
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    card = (tmp_path / "README.md").read_text()
    assert "AR-GRPO" in card and "text-to-image" in card and "| `brightness` |" in card  # the YAML's reward name
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*")), "tensorboard logs missing"
