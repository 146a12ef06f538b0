"""AesCoderGRPOTrainer: it learns through the real render-and-judge loop, logs screenshots, and writes its card."""

import json
import os
import string
import subprocess
import sys

import pytest
from datasets import Dataset
from huggingface_hub import ModelCard

from trl_ext import AesCoderGRPOConfig, AesCoderGRPOTrainer
from trl_ext.rewards.agentic import AgenticAestheticReward
from trl_ext.testing import make_tiny_causal_lm, make_tokenizer, save_tiny_model
from trl_ext.web import BrowserPool, PageJudge, PageScore, chromium_available

HAVE_CHROMIUM = chromium_available()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium: `apt-get install chromium` (make installs it)"),
]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LowercaseTextJudge(PageJudge):
    """Scores the share of lowercase letters in the text Chromium actually rendered (innerText)."""

    async def score_page(self, instruction, render):
        text = render.metrics.get("text_sample", "")
        share = sum(c in string.ascii_lowercase for c in text) / max(1, len(text))
        return PageScore(40 * share, 30 * share, 30 * share)


def dataset(n=256):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": "write a page"}]] * n})


def config(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"), max_completion_length=8, num_generations=4, per_device_train_batch_size=8,
        max_steps=2, bf16=False, report_to="none", learning_rate=1e-2, logging_steps=1, save_strategy="no",
        disable_tqdm=True, seed=0, beta=0.0, lint_gate=False, check_runtime=False, serve_cdn_libraries=False,
    )  # fmt: skip
    kwargs.update(overrides)
    return AesCoderGRPOConfig(**kwargs)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tokenizer = make_tokenizer(with_mask_token=False)
    return save_tiny_model(make_tiny_causal_lm(tokenizer, hidden_size=64), tokenizer, tmp_path_factory.mktemp("m"))


@pytest.fixture(scope="module")
def pool():
    with BrowserPool(size=2, page_timeout=8.0, settle_ms=0, mobile_viewport=None) as pool:
        yield pool


@pytest.mark.slow
def test_learns_to_raise_a_judged_reward_through_the_browser(model_path, pool, tmp_path):
    reward = AgenticAestheticReward(page_judge=LowercaseTextJudge(), pool=pool, interactive=False, lint_gate=False)
    args = config(
        tmp_path, num_generations=8, per_device_train_batch_size=8, max_steps=30, learning_rate=3e-3,
        logging_steps=5, aesthetic_weights=[0.0, 1.0, 0.0],
    )  # fmt: skip
    trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset(), aesthetic_reward=reward)
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    # Random start: about 10% of the rendered characters are lowercase letters.
    assert rewards[0] < 0.2
    assert sum(rewards[-2:]) / 2 > rewards[0] + 0.08, rewards
    logged = trainer.state.log_history[0]
    for key in ("rewards/aesthetic_static/mean", "aesthetic/alignment", "aesthetic/failures/page_timeout"):
        assert key in logged, sorted(logged)


def test_screenshots_logs_and_model_card(model_path, pool, tmp_path):
    args = config(tmp_path, report_to=["tensorboard"], max_steps=4, screenshot_logging_steps=2)
    reward = AgenticAestheticReward(
        pool=pool, lint_gate=False, agent_time_budget=5, screenshot_dir=str(tmp_path / "s")
    )
    trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset(), aesthetic_reward=reward)
    assert list(args.reward_weights) == [0.1, 0.8, 0.1]
    assert trainer.reward_func_names == ["aesthetic_execution", "aesthetic_static", "aesthetic_interactive"]
    trainer.train()
    # Written at `screenshot_logging_steps` only, named by the global step TensorBoard logs them at, with the HTML.
    assert sorted(os.listdir(tmp_path / "s")) == [
        f"step_{step:06d}_{tag}.{ext}"
        for step in (2, 4)
        for tag in ("best", "worst")
        for ext in ("html", "json", "png")
    ]
    for step in (2, 4):
        record = json.loads((tmp_path / "s" / f"step_{step:06d}_best.json").read_text())
        assert record["step"] == step and record["html"] == f"step_{step:06d}_best.html"
        worst = json.loads((tmp_path / "s" / f"step_{step:06d}_worst.json").read_text())
        assert record["screenshot"] == f"step_{step:06d}_best.png" and record["reward"] >= worst["reward"]
    # The pages written at the last step are the last batch's (the HTML is what the reward evaluated).
    assert (tmp_path / "s" / "step_000004_best.html").read_text() == reward.last_pages["best"]["html"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = {root for root, _, files in os.walk(tmp_path / "out" / "runs") if any("tfevents" in f for f in files)}
    events = EventAccumulator(run_dir, size_guidance={"images": 0}).Reload()
    assert "screenshots/best" in events.Tags()["images"]
    assert [event.step for event in events.Images("screenshots/best")] == [2, 4]
    trainer.create_model_card(dataset_name="trl-ext/web-prompts")
    card = ModelCard.load(os.path.join(args.output_dir, "README.md"))
    assert "aescoder" in card.data.tags and card.data.datasets == ["trl-ext/web-prompts"]
    assert (
        "2510.23272" in card.text and "`aesthetic_static` | 0.8" in card.text and "offline design judge" in card.text
    )


def test_default_reward_is_built_from_the_config(model_path, tmp_path):
    args = config(tmp_path, browser_pool_size=1, page_timeout=5.0, aesthetic_weights=[0.2, 0.6, 0.2])
    trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset())
    reward = trainer.aesthetic_reward
    assert reward.weights == (0.2, 0.6, 0.2) and list(args.reward_weights) == [0.2, 0.6, 0.2]
    assert reward._pool_kwargs["size"] == 1 and reward._pool_kwargs["router"] is None
    assert reward.screenshot_dir is None  # the trainer writes the pages itself, at its own steps
    assert str(trainer.screenshot_dir).endswith(os.path.join("out", "screenshots"))
    reward.close()


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="judge_model"):
        config(tmp_path, judge_base_url="http://localhost:8000/v1")
    with pytest.raises(ValueError, match="judge_base_url"):
        config(tmp_path, judge_base_url="localhost:8000", judge_model="m")
    with pytest.raises(ValueError, match="aesthetic_weights"):
        config(tmp_path, aesthetic_weights=[1.0])
    with pytest.raises(ValueError, match="page_timeout"):
        config(tmp_path, page_timeout=0)


def test_vlm_judges_are_built_from_an_endpoint(model_path, tmp_path):
    from trl_ext.web.vlm_judge import VLMInteractionJudge, VLMPageJudge

    args = config(tmp_path, judge_base_url="http://127.0.0.1:9/v1", judge_model="judge-vlm", judge_timeout=7.0)
    trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset())
    assert isinstance(trainer.aesthetic_reward.page_judge, VLMPageJudge)
    assert isinstance(trainer.aesthetic_reward.interaction_judge, VLMInteractionJudge)
    trainer.aesthetic_reward.close()


@pytest.mark.slow
def test_tiny_recipe_runs_under_accelerate(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
        os.path.join(REPO, "recipes", "aescoder_grpo.py"), "--config", os.path.join(REPO, "recipes", "configs", "aescoder_grpo_tiny.yaml"),
        "--output_dir", str(out), "--max_steps", "3", "--report_to", "none",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "screenshots" in run.stdout
    assert (out / "README.md").exists() and (out / "model.safetensors").exists()
    assert any(name.endswith("_best.png") for name in os.listdir(out / "screenshots"))


@pytest.mark.slow
def test_resume_inside_a_ppo_cycle_is_exact(model_path, pool, tmp_path):
    import torch

    def run(name, resume=None):
        reward = AgenticAestheticReward(page_judge=LowercaseTextJudge(), pool=pool, interactive=False, lint_gate=False)
        args = config(
            tmp_path, output_dir=str(tmp_path / name), max_steps=4, num_iterations=2, save_strategy="steps",
            save_steps=3, aesthetic_weights=[0.0, 1.0, 0.0],
        )  # fmt: skip
        trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset(), aesthetic_reward=reward)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    straight = run("straight")
    resumed = run("resumed", resume=str(tmp_path / "straight" / "checkpoint-3"))
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"

    def step4(trainer):
        (logs,) = [h for h in trainer.state.log_history if h.get("step") == 4 and "loss" in h]
        return {k: v for k, v in logs.items() if k not in ("step_time",) and "per_second" not in k}

    assert step4(straight) == step4(resumed) and step4(straight)


def test_dead_judge_endpoint_stops_the_run_before_the_first_step(model_path, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    args = config(
        tmp_path, judge_base_url=f"http://127.0.0.1:{port}/v1", judge_model="judge", judge_max_retries=0,
        judge_timeout=2, interactive_agent=False, browser_pool_size=1,
    )  # fmt: skip
    trainer = AesCoderGRPOTrainer(model_path, args=args, train_dataset=dataset())
    with pytest.raises(RuntimeError, match="judge_base_url"):
        trainer.train()
    assert trainer.state.global_step == 0
