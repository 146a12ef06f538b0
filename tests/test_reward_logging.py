"""Rewards are logged at every logging step, under the names the config gives them."""

import asyncio
import string

import pytest
from datasets import Dataset
from trl.trainer.utils import get_callable_name, is_async_callable

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.rewards import named_reward
from trl_ext.testing import make_tiny_dream_lm, make_tokenizer, save_tiny_model, target_fraction_reward


class _Stateful:
    required_columns = (("test_cases",),)

    def __init__(self):
        self.calls = 0

    def __call__(self, completions, **kwargs):
        self.calls += 1
        return [1.0] * len(completions)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_named_reward_renames_and_delegates():
    inner = _Stateful()
    reward = named_reward(inner, "code_pass_rate")
    assert get_callable_name(reward) == "code_pass_rate" and reward.__name__ == "code_pass_rate"
    assert not is_async_callable(reward)
    assert reward(completions=["a", "b"]) == [1.0, 1.0] and inner.calls == 1
    assert reward.required_columns == (("test_cases",),)
    reward.load_state_dict({"calls": 7})
    assert inner.calls == 7 and reward.state_dict() == {"calls": 7}
    assert get_callable_name(inner) == "_Stateful"  # the wrapped reward keeps its own name


def test_named_async_reward_stays_async():
    async def async_code_pass_rate_reward(completions, **kwargs):
        return [0.5] * len(completions)

    reward = named_reward(async_code_pass_rate_reward, "code_pass_rate")
    assert is_async_callable(reward) and get_callable_name(reward) == "code_pass_rate"
    assert asyncio.run(reward(completions=["x"])) == [0.5]
    assert async_code_pass_rate_reward.__name__ == "async_code_pass_rate_reward"
    with pytest.raises(ValueError, match="non-empty string"):
        named_reward(async_code_pass_rate_reward, "")


def test_rewards_are_logged_every_step_inside_a_ppo_cycle(tmp_path):
    """With `num_iterations=2` TRL generates every other step; each step still logs the rewards it trained on."""
    tokenizer = make_tokenizer()
    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "base")
    args = CoupledGRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=4, logging_steps=1, num_iterations=2, bf16=False,
        report_to="none", disable_tqdm=True, seed=0, per_device_train_batch_size=8, num_generations=4,
        max_completion_length=8, save_strategy="no", learning_rate=0.05,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"say {c}"}] for c in "abcdefgh" * 4]})
    reward = named_reward(target_fraction_reward(string.ascii_lowercase), "lowercase_fraction")
    trainer = CoupledGRPOTrainer(path, reward, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2, 3, 4]
    for entry in steps:
        assert {"reward", "reward_std", "rewards/lowercase_fraction/mean"} <= entry.keys(), entry
    # Steps 2 and 4 reuse the rollouts of steps 1 and 3: same rewards; a new generation gives new ones.
    key = "rewards/lowercase_fraction/mean"
    assert steps[1][key] == steps[0][key] and steps[3][key] == steps[2][key]
    assert steps[2][key] != steps[0][key]
