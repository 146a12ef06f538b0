from __future__ import annotations

import contextlib
import io
import logging
import os

from transformers import TrainerCallback
from trl import GRPOTrainer

from ..data.aescode import AESCODER_CITATION
from ..model_card import write_model_card
from ..rewards.agentic import AgenticAestheticReward, RewardInfrastructureError
from ._resume import ExactResumeMixin
from ._validation import RunGuardsMixin, validate_trainer_inputs
from .aescoder_grpo_config import AesCoderGRPOConfig

logger = logging.getLogger(__name__)


class _ScreenshotCallback(TrainerCallback):
    """Every `screenshot_logging_steps` optimizer steps (global step, after the update), the trainer's pages."""

    def __init__(self, trainer: AesCoderGRPOTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        every = args.screenshot_logging_steps
        if every and state.global_step % every == 0 and state.is_world_process_zero:
            self.trainer._log_screenshots()


CITATION = AESCODER_CITATION


def build_aesthetic_reward(args: AesCoderGRPOConfig) -> AgenticAestheticReward:
    """
    The agentic reward described by `args`: VLM judges on `judge_base_url` (or the offline design judge and heuristic
    GUI agent), a browser pool serving local CDN libraries. (The trainer writes the pages to `<output_dir>/screenshots`.)
    """
    return AgenticAestheticReward.from_settings(
        judge_base_url=args.judge_base_url,
        judge_model=args.judge_model,
        agent_base_url=args.agent_base_url,
        agent_model=args.agent_model,
        client_kwargs={
            "api_key_env": args.judge_api_key_env,
            "timeout": args.judge_timeout,
            "max_retries": args.judge_max_retries,
            "max_concurrency": args.judge_max_concurrency,
        },
        serve_cdn_libraries=args.serve_cdn_libraries,
        weights=args.aesthetic_weights,
        lint_gate=args.lint_gate,
        check_runtime=args.check_runtime,
        interactive=args.interactive_agent,
        max_actions=args.agent_max_actions,
        max_graded=args.agent_max_graded,
        agent_time_budget=args.agent_time_budget,
        pool_size=args.browser_pool_size,
        page_timeout=args.page_timeout,
        judge_timeout=args.judge_timeout * (args.judge_max_retries + 1),
        max_infrastructure_failure_rate=args.max_infrastructure_failure_rate,
        failure_window=args.infrastructure_failure_window,
    )


class AesCoderGRPOTrainer(RunGuardsMixin, ExactResumeMixin, GRPOTrainer):
    """
    GRPO with AesCoder's agentic aesthetic reward ([paper](https://huggingface.co/papers/2510.23272)): plain GRPO
    whose first three reward functions are the execution, static-aesthetics and interactive terms of an
    [`~trl_ext.rewards.agentic.AgenticAestheticReward`] (weighted 0.1 / 0.8 / 0.1 by default).

    What the subclass adds to [`~trl.GRPOTrainer`]: it builds the reward from the config, owns the browser pool's
    lifecycle (closed when training ends), every `screenshot_logging_steps` logs the best and worst page of the last
    batch to TensorBoard / W&B and writes them to `<output_dir>/screenshots/step_<global_step>_{best,worst}.{png,html,
    json}` (the step TensorBoard shows; the page's HTML next to its screenshot and scores), and writes an AesCoder
    model card.

    Args:
        model (`str` or `PreTrainedModel`):
            The code model (e.g. `Qwen/Qwen3-4B-Instruct-2507`, after AesCoder's SFT stage).
        reward_funcs (`list`, *optional*):
            Extra reward functions, appended after the three aesthetic ones.
        args ([`AesCoderGRPOConfig`], *optional*):
            Configuration.
        aesthetic_reward ([`~trl_ext.rewards.agentic.AgenticAestheticReward`], *optional*):
            A ready-made reward (custom judges, a shared pool); built from `args` when omitted.
        **kwargs:
            Everything else [`~trl.GRPOTrainer`] takes (`train_dataset`, `processing_class`, `peft_config`, ...).

    Example:

    ```python
    >>> from trl_ext import AesCoderGRPOConfig, AesCoderGRPOTrainer
    >>> args = AesCoderGRPOConfig("aescoder-out", judge_base_url="http://localhost:8000/v1",
    ...                           judge_model="Qwen/Qwen2.5-VL-72B-Instruct")  # bf16 by default: a GPU  # doctest: +SKIP
    >>> trainer = AesCoderGRPOTrainer("Qwen/Qwen3-4B-Instruct-2507", args=args, train_dataset=dataset)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    ```
    """

    _tag_names = ["trl", "trl_ext", "grpo", "aescoder", "code-aesthetics"]
    _name = "AesCoder-GRPO"
    _paper = {"title": "Code Aesthetics with Agentic Reward Feedback", "id": "2510.23272", "citation": CITATION}

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: AesCoderGRPOConfig | None = None,
        *pargs,
        aesthetic_reward: AgenticAestheticReward | None = None,
        **kwargs,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = AesCoderGRPOConfig(f"{str(name).split('/')[-1]}-AesCoder-GRPO")
        if not isinstance(args, AesCoderGRPOConfig):
            raise TypeError(f"`args` must be an AesCoderGRPOConfig, got {type(args).__name__}.")
        extra = (
            list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else ([reward_funcs] if reward_funcs else [])
        )
        validate_trainer_inputs(model, extra, pargs, kwargs)
        self.aesthetic_reward = aesthetic_reward if aesthetic_reward is not None else build_aesthetic_reward(args)
        # The trainer writes the pages, at its logging steps and under its step numbers; the reward would write every
        # batch, numbered by the step being computed (one less than the step TensorBoard logs it at).
        self.screenshot_dir = self.aesthetic_reward.screenshot_dir or os.path.join(args.output_dir, "screenshots")
        self.aesthetic_reward.screenshot_dir = None
        self._pages_written = self.aesthetic_reward.pages_version
        if args.reward_weights is None:
            args.reward_weights = [*self.aesthetic_reward.weights, *([1.0] * len(extra))]
        super().__init__(model, [*self.aesthetic_reward.reward_funcs, *extra], args, *pargs, **kwargs)
        self.add_callback(_ScreenshotCallback(self))

    def train(self, *args, **kwargs):
        try:
            if self.args.reward_preflight:
                self.aesthetic_reward.preflight()
            try:
                return super().train(*args, **kwargs)
            except RewardInfrastructureError:
                # Keep what was learnt before the reward broke down; the run still stops with the error.
                path = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}-reward-failure")
                logger.error("The reward's infrastructure failed; saving the model to %s before stopping.", path)
                with contextlib.suppress(Exception):
                    self.save_model(path)
                raise
        finally:
            # Closes Chromium and the judges' clients (a later evaluation re-creates the pool on demand).
            self.aesthetic_reward.close()

    def _log_screenshots(self) -> None:
        """Write and log the best and worst page of the last batch under `self.state.global_step` (once per batch)."""
        reward = self.aesthetic_reward
        if reward.pages_version == self._pages_written:
            return  # no new batch since the last write (e.g. `steps_per_generation` > 1)
        self._pages_written = reward.pages_version
        step = self.state.global_step
        reward.write_pages(self.screenshot_dir, step)
        shots = reward.last_screenshots
        if not shots:
            return
        from PIL import Image

        images = {tag: (Image.open(io.BytesIO(png)).convert("RGB"), caption) for tag, (png, caption) in shots.items()}
        report_to = self.args.report_to or []
        if "tensorboard" in report_to:
            import numpy as np
            from transformers.integrations import TensorBoardCallback

            for callback in self.callback_handler.callbacks:
                writer = getattr(callback, "tb_writer", None) if isinstance(callback, TensorBoardCallback) else None
                if writer is not None:
                    for tag, (image, caption) in images.items():
                        # TensorBoard has a hard time with very tall images: keep the first two viewports.
                        array = np.asarray(image.crop((0, 0, image.width, min(image.height, 1920))))
                        writer.add_image(f"screenshots/{tag}", array, step, dataformats="HWC")
                        writer.add_text(f"screenshots/{tag}", caption, step)
        if "wandb" in report_to:
            import wandb

            if wandb.run is not None:
                wandb.log({f"screenshots/{tag}": wandb.Image(img, caption=cap) for tag, (img, cap) in images.items()})

    def create_model_card(self, model_name=None, dataset_name=None, tags=None, **kwargs):
        """
        Write `README.md` in `output_dir` from `model_cards/aescoder_grpo.md`: base model, datasets, the three reward
        terms and their weights, the judge, hyper-parameters, training results, the OpenDesign-style evaluation when
        `<output_dir>/eval/report.json` exists (`recipes/aescoder_eval.py`), a quickstart and citations. `kwargs` go to
        [`~trl_ext.model_card.render_model_card`] (e.g. `license`, `eval_report`).
        """
        args = self.args
        judge = f"`{args.judge_model}` (OpenAI-compatible endpoint)" if args.judge_base_url else "offline design judge"
        write_model_card(
            self,
            "aescoder_grpo.md",
            model_name=model_name,
            dataset_name=dataset_name,
            tags=["code", "html", "web-design", *([tags] if isinstance(tags, str) else (tags or []))],
            pipeline_tag="text-generation",
            judge=judge,
            lint_gate=args.lint_gate,
            max_new_tokens=args.max_completion_length,
            hyperparameters={
                "num_generations": args.num_generations,
                "max_prompt_length": getattr(args, "max_prompt_length", None),
                "max_completion_length": args.max_completion_length,
                "temperature (rollout)": args.temperature,
                "beta": args.beta,
                "epsilon": args.epsilon,
                "num_iterations": args.num_iterations,
                "scale_rewards": args.scale_rewards,
                "loss_type": args.loss_type,
                "aesthetic_weights (exec/static/interactive)": list(args.aesthetic_weights),
                "lint_gate": args.lint_gate,
                "judge": judge,
            },
            **kwargs,
        )
