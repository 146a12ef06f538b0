"""
Exact resume: N steps straight equal k steps + `resume_from_checkpoint` to N (weights bit for bit, logged metrics),
with the checkpoint inside a PPO cycle (`num_iterations=2`, checkpoint after an odd step) and a synced reference
model.
"""

import string

import pytest
import torch
from datasets import Dataset

from trl_ext import ARImageGRPOConfig, ARImageGRPOTrainer, CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.rewards.pixel import brightness_reward
from trl_ext.testing import make_tiny_dream_lm, make_tokenizer, save_tiny_model, target_fraction_reward
from trl_ext.testing_image import make_tiny_llamagen, make_tiny_vq


def _is_timing(key: str) -> bool:  # wall-clock measurements differ between any two runs
    return "per_second" in key or key.endswith(("_time", "runtime")) or "seconds" in key


def _common(tmp_path, name):
    return dict(
        output_dir=str(tmp_path / name), max_steps=6, save_strategy="steps", save_steps=3, logging_steps=1,
        bf16=False, report_to="none", disable_tqdm=True, seed=0, num_iterations=2, learning_rate=0.05,
        per_device_train_batch_size=8, num_generations=4,
    )  # fmt: skip


def _coupled(tmp_path, name):
    tokenizer = make_tokenizer()
    path = tmp_path / "base"
    if not path.exists():
        save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, path)
    args = CoupledGRPOConfig(
        **_common(tmp_path, name), max_completion_length=8, beta=0.01, sync_ref_model=True, ref_model_sync_steps=2
    )
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"say {c}"}] for c in "abcdefgh" * 8]})
    reward = target_fraction_reward(string.ascii_lowercase)
    return CoupledGRPOTrainer(str(path), reward, args=args, train_dataset=dataset, processing_class=tokenizer)


def _c2i(tmp_path, name):
    args = ARImageGRPOConfig(**_common(tmp_path, name), use_cpu=True, beta=0.0)
    dataset = Dataset.from_dict(
        {"prompt": [f"class {i % 3}" for i in range(64)], "class_label": [i % 3 for i in range(64)]}
    )
    return ARImageGRPOTrainer(
        make_tiny_llamagen(), brightness_reward, args=args, train_dataset=dataset, vq_model=make_tiny_vq()
    )


def _metrics(trainer, after_step):
    return [
        {k: v for k, v in h.items() if not _is_timing(k)}
        for h in trainer.state.log_history
        if h.get("step", 0) > after_step and "loss" in h
    ]


@pytest.mark.slow
@pytest.mark.parametrize("build", [_coupled, _c2i], ids=["coupled", "c2i"])
def test_resume_inside_a_ppo_cycle_is_exact(tmp_path, build):
    straight = build(tmp_path, "straight")
    straight.train()
    resumed = build(tmp_path, "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-3"))
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    assert _metrics(resumed, 3) == _metrics(straight, 3)
    if straight.ref_model is not None:
        for a, b in zip(straight.ref_model.parameters(), resumed.ref_model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_checkpoint_without_trl_ext_state_is_refused(tmp_path):
    trainer = _coupled(tmp_path, "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="cannot resume exactly"):
        trainer._load_rng_state(str(tmp_path / "empty"))
