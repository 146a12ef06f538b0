"""Real 2-process CPU runs (gloo): DDP must synchronise the gradients of the diffusion estimate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trl_ext.testing import make_tiny_dream_lm, save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def torchrun(*args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_stay_in_sync(tokenizer, tmp_path):
    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")
    before = {n: p.clone() for n, p in make_tiny_dream_lm(tokenizer).named_parameters()}
    result = torchrun(ROOT / "tests" / "scripts" / "ddp_train.py", path, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(tmp_path / "out" / "rank0.pt")
    rank1 = torch.load(tmp_path / "out" / "rank1.pt")
    assert rank0["world_size"] == 2
    # Each rank sampled different completions; only synchronised gradients keep the weights identical.
    for name, param in rank0["params"].items():
        torch.testing.assert_close(param, rank1["params"][name], msg=name)
    assert any(not torch.equal(p, before[n]) for n, p in rank0["params"].items())


@pytest.mark.slow
def test_recipe_runs_under_torchrun(tmp_path):
    result = torchrun(
        "recipes/coupled_grpo.py", "--config", "recipes/configs/coupled_grpo_tiny.yaml", "--output_dir", tmp_path,
        "--max_steps", "4", "--per_device_train_batch_size", "8", "--report_to", "none",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "README.md").exists()


@pytest.mark.slow
def test_recipe_runs_under_accelerate_launch(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
        "recipes/coupled_grpo.py", "--config", "recipes/configs/coupled_grpo_tiny.yaml",
        "--output_dir", str(tmp_path), "--max_steps", "20", "--logging_steps", "5", "--report_to", "tensorboard",
        "--save_strategy", "steps", "--save_steps", "20",
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    # Every logging step has each reward, under the YAML's `reward_funcs` names.
    history = json.loads((tmp_path / "checkpoint-20" / "trainer_state.json").read_text())["log_history"]
    logged = [h for h in history if "loss" in h]
    assert [h["step"] for h in logged] == [5, 10, 15, 20]
    for name in ("code_pass_rate", "code_format", "lowercase_fraction"):
        assert all(f"rewards/{name}/mean" in h for h in logged), (name, logged[0].keys())
    card = (tmp_path / "README.md").read_text()
    assert "coupled-GRPO" in card and "| `lowercase_fraction` |" in card
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*")), "tensorboard logs missing"


@pytest.mark.slow
def test_two_process_resume_inside_a_ppo_cycle_is_exact(tmp_path):
    """torchrun, 2 processes: 4 steps straight == 3 steps + --resume_from_checkpoint to 4 (num_iterations=2, so
    checkpoint-3 sits in the middle of a PPO cycle), bit for bit."""
    from safetensors.torch import load_file

    common = [
        "recipes/coupled_grpo.py", "--config", "recipes/configs/coupled_grpo_tiny.yaml", "--max_steps", "4",
        "--per_device_train_batch_size", "8", "--report_to", "none", "--reward_funcs", "lowercase_fraction",
        "--reward_weights", "1.0", "--num_iterations", "2", "--logging_steps", "1",
    ]  # fmt: skip
    straight = tmp_path / "straight"
    result = torchrun(*common, "--output_dir", straight, "--save_strategy", "steps", "--save_steps", "3")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (straight / "checkpoint-3" / "trl_ext_state_1.pt").exists()
    resumed = tmp_path / "resumed"
    result = torchrun(
        *common, "--output_dir", resumed, "--resume_from_checkpoint", straight / "checkpoint-3",
        "--model_name_or_path", straight / "_tiny_base_model",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after a 2-process resume"
