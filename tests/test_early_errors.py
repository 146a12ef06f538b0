"""Each misconfiguration a TRL user makes fails before the first rollout (most before any model loads), naming the
field or column and the fix."""

import pytest
import trl.trainer.utils as trl_utils
from datasets import Dataset

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.rewards import code_format_reward, code_pass_rate_reward
from trl_ext.testing import make_tiny_dream_lm, save_tiny_model, target_fraction_reward

REWARD = target_fraction_reward("a")


@pytest.fixture
def model_path(tokenizer, tmp_path):
    return save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")


@pytest.fixture
def no_model_loading(monkeypatch):
    """Any model load fails the test: the error must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the misconfiguration was reported")

    monkeypatch.setattr(trl_utils, "create_model_from_path", refuse)
    import trl.trainer.grpo_trainer as grpo

    monkeypatch.setattr(grpo, "create_model_from_path", refuse)


def args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"), max_completion_length=8, num_generations=4, per_device_train_batch_size=8,
        max_steps=1, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True, beta=0.0,
    )  # fmt: skip
    kwargs.update(overrides)
    return CoupledGRPOConfig(**kwargs)


def chat(n=8, **columns):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": "hi"}]] * n, **columns})


def test_dataset_without_prompt(model_path, tmp_path, tokenizer, no_model_loading):
    dataset = Dataset.from_dict({"question": ["hi"] * 8})
    with pytest.raises(ValueError, match=r"no 'prompt' column .*rename_column\('question', 'prompt'\)"):
        CoupledGRPOTrainer(model_path, REWARD, args=args(tmp_path), train_dataset=dataset, processing_class=tokenizer)


def test_missing_test_cases_column(model_path, tmp_path, tokenizer, no_model_loading):
    with pytest.raises(ValueError, match=r"`code_pass_rate_reward` needs a 'test_cases' or 'tests' column"):
        CoupledGRPOTrainer(
            model_path, [code_pass_rate_reward, code_format_reward], args=args(tmp_path), train_dataset=chat(),
            processing_class=tokenizer,
        )  # fmt: skip


def test_test_cases_as_one_string(model_path, tmp_path, tokenizer, no_model_loading):
    dataset = chat(test_cases=["assert f(1) == 2\nassert f(2) == 3"] * 8)
    with pytest.raises(ValueError, match=r"train_dataset\['test_cases'\] holds one string per row"):
        CoupledGRPOTrainer(
            model_path, code_pass_rate_reward, args=args(tmp_path), train_dataset=dataset, processing_class=tokenizer
        )


def test_eval_split_is_checked_too(model_path, tmp_path, tokenizer, no_model_loading):
    with pytest.raises(ValueError, match="eval_dataset has no 'prompt' column"):
        CoupledGRPOTrainer(
            model_path, REWARD, args=args(tmp_path, eval_strategy="steps", eval_steps=1), train_dataset=chat(),
            eval_dataset=Dataset.from_dict({"text": ["x"] * 8}), processing_class=tokenizer,
        )  # fmt: skip


def test_missing_model_folder(tmp_path, tokenizer, no_model_loading):
    missing = str(tmp_path / "no" / "such" / "model")
    with pytest.raises(FileNotFoundError, match=r"is not an existing folder .*'org/name'"):
        CoupledGRPOTrainer(missing, REWARD, args=args(tmp_path), train_dataset=chat(), processing_class=tokenizer)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("confidence_threshold", -0.1, r"`confidence_threshold` must be in \(0, 1\]"),
        ("block_length", 3, r"`block_length` \(3\) must be >= 1 and divide `max_completion_length` \(8\)"),
        ("diffusion_eps", 0.0, r"`diffusion_eps` must be in \(0, 1\)"),
        ("diffusion_alg", "fastest", "`diffusion_alg` must be one of"),
        ("likelihood_context", "prompt", "`likelihood_context` must be 'canvas' or 'completion'"),
        ("temperature", -1.0, "`temperature` must be >= 0"),
    ],
)
def test_bad_config_values_fail_in_the_config(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        args(tmp_path, **{field: value})


@pytest.mark.parametrize("bad", [None, float("nan")], ids=["none", "nan"])
def test_a_step_whose_rewards_all_failed_stops_the_run(model_path, tmp_path, tokenizer, bad):
    def broken_judge(prompts, completions, **kwargs):
        return [bad] * len(completions)

    trainer = CoupledGRPOTrainer(
        model_path, broken_judge, args=args(tmp_path), train_dataset=chat(), processing_class=tokenizer
    )
    with pytest.raises(RuntimeError, match=r"Every reward of this step is None or NaN \(\{'broken_judge': 8\}"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_in_memory_model_with_a_reference_model(tmp_path, tokenizer):
    with pytest.raises(ValueError, match=r"`beta != 0` needs a reference model.*Save it first"):
        CoupledGRPOTrainer(
            make_tiny_dream_lm(tokenizer), REWARD, args=args(tmp_path, beta=0.01), train_dataset=chat(),
            processing_class=tokenizer,
        )  # fmt: skip
