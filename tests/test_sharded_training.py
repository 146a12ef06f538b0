"""
The shipped sharding accelerate configs, run for real: 2 CPU processes (gloo), DeepSpeed's CPU accelerator.

Each tiny recipe trains under `recipes/accelerate_configs/zero2.yaml`, `zero3.yaml` and `fsdp2.yaml` (switched to CPU,
2 processes, fp32), and must end with the same weights as the same run under plain DDP (`torchrun`): sharding
partitions the state, it must not change the step. Under ZeRO-3 the frozen helper models (the c2i run's VQ decoder)
stay whole.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "accelerate_configs"

pytestmark = pytest.mark.slow
needs_deepspeed = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import deepspeed"], capture_output=True).returncode != 0,
    reason='needs DeepSpeed: pip install "trl_ext[deepspeed]" (make installs it)',
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# Each tiny recipe, shortened to 2 steps of 2 processes.
RECIPES = {
    "coupled": [
        "recipes/coupled_grpo.py", "--config", "recipes/configs/coupled_grpo_tiny.yaml", "--max_steps", "2",
        "--per_device_train_batch_size", "8",
    ],
    "c2i": [
        "recipes/ar_grpo_c2i.py", "--config", "recipes/configs/ar_grpo_c2i_tiny.yaml", "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--num_generations", "4",
    ],
    "aescoder": [
        "recipes/aescoder_grpo.py", "--config", "recipes/configs/aescoder_grpo_tiny.yaml", "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--num_generations", "4", "--browser_pool_size", "1",
        "--screenshot_logging_steps", "0",
    ],
}  # fmt: skip
BASE_MODEL = {"coupled": "_tiny_base_model", "c2i": "_tiny_base_models/gpt", "aescoder": "_tiny_base_model"}


def recipe_args(recipe: str, reference: Path) -> list:
    """The recipe's arguments, started from the tiny model(s) the DDP reference run saved."""
    args = [*RECIPES[recipe], "--model_name_or_path", reference / BASE_MODEL[recipe]]
    if recipe == "c2i":
        args += ["--vq_model_name_or_path", reference / "_tiny_base_models" / "vq"]
    return args


def cpu_config(name: str, tmp_path: Path) -> Path:
    """The shipped accelerate config `name`, changed only where a 2-process CPU run must differ."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    config.update(use_cpu=True, num_processes=2, num_machines=1, mixed_precision="no")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run(cmd, timeout=900):
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    return result


def accelerate_launch(config: Path, args, output_dir: Path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port",
           free_port(), *map(str, args), "--output_dir", str(output_dir), "--report_to", "none"]  # fmt: skip
    return run(cmd)


def torchrun(args, output_dir: Path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
           *map(str, args), "--output_dir", str(output_dir), "--report_to", "none"]  # fmt: skip
    return run(cmd)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The reference: a recipe under plain DDP, started from the tiny model the recipe saves (run once each)."""
    runs = {}

    def get(name: str) -> Path:
        if name not in runs:
            out = tmp_path_factory.mktemp(f"ddp-{name}")
            torchrun(RECIPES[name], out)
            runs[name] = out
        return runs[name]

    return get


@needs_deepspeed
@pytest.mark.parametrize("stage", ["zero2.yaml", "zero3.yaml"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_under_deepspeed_matches_ddp(recipe, stage, ddp_run, tmp_path):
    reference = ddp_run(recipe)
    out = tmp_path / "run"
    args = recipe_args(recipe, reference)
    accelerate_launch(cpu_config(stage, tmp_path), [*args, "--save_strategy", "steps", "--save_steps", "2"], out)
    # DeepSpeed ran, with the optimizer state partitioned over the 2 processes.
    partitions = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    assert len(partitions) == 2 and all("zero_pp_rank_" in name for name in partitions), partitions
    assert (out / "checkpoint-2" / "trl_ext_state_1.pt").exists()  # the exact-resume state of each process
    trained, expected = weights(out), weights(reference)
    base = weights(reference / BASE_MODEL[recipe])
    assert_same_training(trained, expected, base)


def assert_same_training(trained, expected, base):
    assert trained.keys() == expected.keys()
    # The run trained (sharded weights are gathered when saved, not the empty partitions) ...
    assert any(not torch.equal(trained[k], base[k]) for k in base), "no weight moved"
    # ... and it took the same steps as DDP.
    for key in expected:
        torch.testing.assert_close(trained[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_under_fsdp2_matches_ddp(recipe, ddp_run, tmp_path):
    reference = ddp_run(recipe)
    out = tmp_path / "run"
    args = recipe_args(recipe, reference)
    accelerate_launch(cpu_config("fsdp2.yaml", tmp_path), args, out)
    base = weights(reference / BASE_MODEL[recipe])
    assert_same_training(weights(out), weights(reference), base)


@needs_deepspeed
def test_frozen_models_stay_whole_under_zero3(tmp_path):
    """Loaded after a ZeRO-3 config is set, a frozen model is partitioned (empty on each process); loading it in
    `frozen_model_loading()` or passing it through `materialize_frozen` gives every process the whole model."""
    from trl_ext.testing_image import make_tiny_vq

    make_tiny_vq(channels=32, downsample_ratio=1).save_pretrained(tmp_path / "vq")
    torchrun_script = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                       free_port(), ROOT / "tests" / "scripts" / "zero3_frozen.py", tmp_path / "vq", tmp_path]  # fmt: skip
    run([str(a) for a in torchrun_script], timeout=600)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result == {
            "partitioned_before": True,
            "whole_not_partitioned": True,
            "materialized": True,
            "materialized_decodes": True,
            "whole": True,
            "whole_decodes": True,
        }, (rank, result)
