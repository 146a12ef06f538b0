"""Coupled-GRPO: GRPO for masked-diffusion language models (DiffuCoder, arXiv 2506.20639)."""

from __future__ import annotations

import logging
import time

import torch
from accelerate.utils import gather
from trl import GRPOTrainer
from trl.trainer.utils import pad

from ..generation.masked_diffusion import MaskedDiffusionSampler, sampling_defaults
from ..model_card import write_model_card
from ..models._native import check_native_model, load_generation_config, resolve_trust_remote_code
from ..models.diffusion_lm import MaskedDiffusionAdapter, add_diffusion_scoring, diffusion_stop_token_ids
from ._resume import ExactResumeMixin
from ._rollout import rollout_model
from ._validation import RunGuardsMixin, check_reference_model, validate_trainer_inputs
from .coupled_estimator import MaskPlan, draw_mask_plan, estimate_log_likelihood
from .coupled_grpo_config import PAPER_ALG, CoupledGRPOConfig

logger = logging.getLogger(__name__)

CITATION = """\
@article{gong2025diffucoder,
  title   = {{DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation}},
  author  = {Shansan Gong and Ruixiang Zhang and Huangjie Zheng and Jiatao Gu and Navdeep Jaitly and Lingpeng Kong and Yizhe Zhang},
  journal = {arXiv preprint arXiv:2506.20639},
  year    = {2025}
}"""


class CoupledGRPOTrainer(RunGuardsMixin, ExactResumeMixin, GRPOTrainer):
    """
    GRPO for masked-diffusion LMs (Dream, DiffuCoder, LLaDA) with coupled-sampling log-likelihood estimates.

    Three of TRL's seams change; everything else (reward functions, advantages, the clipped loss, KL, logging, PEFT,
    checkpoints, accelerate/DeepSpeed) is TRL's own:

    - `_generate_single_turn`: rollouts come from a [`~trl_ext.generation.MaskedDiffusionSampler`] instead of
      `generate`; AR-ness and tokens per forward are logged.
    - `_get_per_token_logps_and_entropies`: per-token log-probabilities are replaced by the masked estimate of
      [`~trl_ext.trainers.coupled_estimator`], computed in one batched forward that projects only scored positions.
    - `_generate_and_score_completions` / `_compute_loss`: each rollout row carries its masks (one plan per PPO
      iteration, drawn from a private generator), so TRL's shuffle and split keep them aligned; old and reference
      estimates are computed once per rollout and iteration with the very masks the policy is scored with.

    Example:

    ```python
    from datasets import Dataset
    from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
    from trl_ext.testing import make_tokenizer, make_tiny_dream_lm, save_tiny_model, target_fraction_reward

    tokenizer = make_tokenizer()
    # A Hub id (e.g. "apple/DiffuCoder-7B-Instruct") or a folder: TRL builds the reference model (beta > 0) from it.
    model = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, "tiny-dream")
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "say a"}]] * 8})
    args = CoupledGRPOConfig("out", max_completion_length=8, num_generations=4, per_device_train_batch_size=4,
                             max_steps=2, bf16=False, report_to="none")
    trainer = CoupledGRPOTrainer(model, target_fraction_reward("a"), args=args, train_dataset=dataset,
                                 processing_class=tokenizer)
    trainer.train()
    ```
    """

    _tag_names = ["trl", "trl_ext", "coupled-grpo", "diffusion-lm"]
    _name = "Coupled-GRPO"
    _paper = {"title": "DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation",
              "id": "2506.20639", "citation": CITATION}

    def __init__(self, model, reward_funcs=None, args: CoupledGRPOConfig | None = None, *pargs, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = CoupledGRPOConfig(f"{str(name).split('/')[-1]}-CoupledGRPO")
        elif not isinstance(args, CoupledGRPOConfig):
            raise TypeError(
                f"`args` must be a `CoupledGRPOConfig`, got `{type(args).__name__}`: the diffusion sampler and the "
                "likelihood estimator are configured there."
            )
        validate_trainer_inputs(model, reward_funcs, pargs, kwargs)
        if isinstance(model, str):
            # Dream/DiffuCoder/LLaDA checkpoints load through the native classes: their remote code targets
            # transformers 4 and runs silently wrong on 5. TRL reads the flag for the policy and the reference model.
            init_kwargs = dict(args.model_init_kwargs or {})
            asked = init_kwargs.get("trust_remote_code", args.trust_remote_code)
            trust = resolve_trust_remote_code(model, asked, init_kwargs.get("revision"))
            if trust != bool(asked):
                init_kwargs["trust_remote_code"] = trust
                args.model_init_kwargs = init_kwargs
                args.trust_remote_code = trust
            self._resolve_sampling_args(args, _checkpoint_generation_config(model, init_kwargs.get("revision")))
        else:
            # Fail before TRL builds a reference model from the policy.
            check_native_model(model)
            MaskedDiffusionAdapter.from_model(model, kwargs.get("processing_class"), args.mask_token_id, args.diffusion_type)
            check_reference_model(model, args.beta, kwargs.get("peft_config"))
            self._resolve_sampling_args(args, getattr(model, "generation_config", None))
        super().__init__(model, reward_funcs, args, *pargs, **kwargs)
        self.diffusion_adapter = MaskedDiffusionAdapter.from_model(
            self.model, self._tokenizer, args.mask_token_id, args.diffusion_type
        )
        add_diffusion_scoring(self.model, self.diffusion_adapter)
        if self.ref_model is not None:
            add_diffusion_scoring(self.ref_model, self.diffusion_adapter)
        generation_config = getattr(self.accelerator.unwrap_model(self.model), "generation_config", None)
        # Instruct checkpoints declare `<|endoftext|>` as EOS while their turns end with `<|im_end|>` / `<|eot_id|>`.
        self.eos_token_ids = list(
            dict.fromkeys([*self.eos_token_ids, *diffusion_stop_token_ids(self._tokenizer, generation_config)])
        )
        self.sampler = MaskedDiffusionSampler(
            self.diffusion_adapter,
            max_new_tokens=args.max_completion_length,
            steps=args.diffusion_steps,
            alg=args.diffusion_alg,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k or None,
            alg_temp=args.diffusion_alg_temp,
            eps=args.diffusion_eps,
            block_length=args.block_length,
            confidence_threshold=args.confidence_threshold,
            threshold_factor=args.threshold_factor,
            kv_cache=args.kv_cache,
            cache_refresh=args.cache_refresh,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        if generation_config is not None:
            self._record_sampling_defaults(generation_config)
        # Private RNGs: reproducible per process, and never touching the global RNG the data order depends on.
        seed = args.seed + 1009 * self.accelerator.process_index
        self._sample_generator = torch.Generator(device=self.accelerator.device).manual_seed(seed)
        self._mask_generator = torch.Generator(device=self.accelerator.device).manual_seed(seed + 1)
        self._rollout_plans: list[MaskPlan] | None = None
        self._loss_plan: MaskPlan | None = None
        # The sampled canvases (`likelihood_context="canvas"`): of the rollout batch being scored, and of the
        # micro-batch inside the loss.
        self._rollout_canvas: torch.Tensor | None = None
        self._loss_canvas: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------------------------------
    # Sampling defaults
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _resolve_sampling_args(args: CoupledGRPOConfig, generation_config) -> None:
        """Fill the sampling fields the user left unset from the checkpoint's generation config, else the paper's."""
        unset = set(getattr(args, "unset_sampling_fields", []))
        if not unset:
            return
        defaults = sampling_defaults(generation_config)
        sources = {"diffusion_steps": "steps", "diffusion_alg": "alg", "diffusion_alg_temp": "alg_temp",
                   "temperature": "temperature", "top_p": "top_p"}
        taken = {}
        for field, key in sources.items():
            if field in unset and key in defaults:
                setattr(args, field, defaults[key])
                taken[field] = defaults[key]
        if args.diffusion_alg is None:
            args.diffusion_alg = PAPER_ALG
        if taken:
            logger.info("Diffusion sampling defaults from the checkpoint's generation config: %s", taken)
        args.unset_sampling_fields = []

    def _record_sampling_defaults(self, generation_config) -> None:
        """Write the rollout sampler's settings into the model's generation config (saved with the model)."""
        sampler = self.sampler
        values = {
            "steps": sampler.steps,
            "alg": sampler.alg,
            "alg_temp": sampler.alg_temp,
            "eps": sampler.eps,
            "temperature": sampler.temperature,
            "top_p": sampler.top_p,
            "top_k": sampler.top_k,
            "block_length": sampler.block_length,
            "confidence_threshold": sampler.confidence_threshold,
            "threshold_factor": sampler.threshold_factor,
            "kv_cache": sampler.kv_cache,
            "cache_refresh": sampler.cache_refresh,
            "max_new_tokens": sampler.max_new_tokens,
            "mask_token_id": self.diffusion_adapter.mask_token_id,
            "eos_token_id": list(self.eos_token_ids),
            "pad_token_id": sampler.pad_token_id,
            "do_sample": sampler.temperature > 0,
        }
        for key, value in values.items():
            setattr(generation_config, key, value)

    # ------------------------------------------------------------------------------------------------------------
    # Rollouts
    # ------------------------------------------------------------------------------------------------------------
    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if images is not None or multimodal_fields:
            raise ValueError("CoupledGRPOTrainer trains text-only masked-diffusion LMs; the batch carries images.")
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        padded = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left").to(device)
        mask = pad([torch.ones_like(t) for t in prompts], padding_value=0, padding_side="left").to(device)
        started = time.perf_counter()
        with rollout_model(self, "diffusion.sample") as unwrapped_model:
            out = self.sampler.sample(unwrapped_model, padded, mask, generator=self._sample_generator)
        seconds = time.perf_counter() - started
        self._rollout_canvas = out.completion_ids
        stats = torch.tensor(
            [
                out.ar_ness.mean().item(),
                out.tokens_per_forward,
                float(out.num_forwards),
                out.cache_hit_fraction,
                seconds,
                float(out.completion_mask.sum()) / max(seconds, 1e-9),
            ],
            device=device,
        )
        stats = gather(stats[None]).mean(0).tolist()
        self._metrics[mode]["diffusion/ar_ness"].append(stats[0])
        self._metrics[mode]["diffusion/tokens_per_forward"].append(stats[1])
        self._metrics[mode]["diffusion/num_forwards"].append(stats[2])
        self._metrics[mode]["diffusion/cache_hit_fraction"].append(stats[3])
        self._metrics[mode]["diffusion/rollout_seconds"].append(stats[4])
        self._metrics[mode]["diffusion/tokens_per_second"].append(stats[5])
        completion_ids = [
            ids[m.bool()].tolist() for ids, m in zip(out.completion_ids.cpu(), out.completion_mask.cpu(), strict=True)
        ]
        return completion_ids, None

    def _generate_and_score_completions(self, inputs):
        self._rollout_plans = None  # drawn lazily by the first estimate TRL asks for (old or reference)
        self._rollout_canvas = None
        output = super()._generate_and_score_completions(inputs)
        if self._rollout_plans is None:
            self._rollout_plans = self._draw_plans(output["prompt_mask"], output["completion_mask"], self._num_plans())
        plans, self._rollout_plans = self._rollout_plans, None
        if self.args.likelihood_context == "canvas":
            output["coupled_canvas"] = self._rollout_canvas
        self._rollout_canvas = None
        output["coupled_masks"] = torch.stack([p.completion_masks for p in plans], 1)
        output["coupled_coef"] = torch.stack([p.coef for p in plans], 1)
        if plans[0].prompt_masks is not None:
            output["coupled_prompt_masks"] = torch.stack([p.prompt_masks for p in plans], 1)
        if self.args.advantage_baseline == "leave_one_out":
            # r_i - mean_{j != i} r_j = G / (G - 1) * (r_i - mean_j r_j)
            generations = self.num_generations if self.model.training else self.num_generations_eval
            output["advantages"] = output["advantages"] * generations / (generations - 1)
        return output

    def _num_plans(self) -> int:
        return self.num_iterations if self.model.training else 1

    def _draw_plans(self, prompt_mask, completion_mask, count) -> list[MaskPlan]:
        maskable, scored = completion_mask, None
        if self.args.likelihood_context == "canvas":
            # The whole canvas is masked like the rest; only the completion (up to its first EOS) is scored.
            maskable = torch.ones_like(self._current_canvas())
            scored = _fit(completion_mask, maskable.size(1))
        return [
            draw_mask_plan(
                maskable,
                self.args.likelihood_estimator,
                self.args.mask_t_min,
                self.args.mask_t_max,
                generator=self._mask_generator,
                prompt_mask=prompt_mask,
                prompt_mask_prob=self.args.d1_prompt_mask_prob,
                scored_mask=scored,
            )
            for _ in range(count)
        ]

    def _current_canvas(self) -> torch.Tensor:
        canvas = self._loss_canvas if self._loss_canvas is not None else self._rollout_canvas
        if canvas is None:
            raise RuntimeError(
                "`likelihood_context='canvas'` needs the sampled canvas of the batch being scored, and none is "
                "recorded: likelihoods were requested outside a rollout or a loss computation."
            )
        return canvas

    # ------------------------------------------------------------------------------------------------------------
    # Likelihood estimates
    # ------------------------------------------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal_inputs,
    ):
        """
        The masked estimate of each completion token's log-likelihood, `(B, T)` inside the loss (with the plan of the
        current PPO iteration) and `(B, num_iterations, T)` when TRL asks for old or reference values at rollout time
        (one slice per iteration's plan, so the ratio always compares estimates under the same masks).
        """
        prompt_ids, completion_ids = input_ids[:, :-logits_to_keep], input_ids[:, -logits_to_keep:]
        prompt_mask, completion_mask = attention_mask[:, :-logits_to_keep], attention_mask[:, -logits_to_keep:]
        context_mask = completion_mask
        if self.args.likelihood_context == "canvas":
            # DiffuCoder's passes see the whole sampled canvas; the completion is its prefix up to the first EOS.
            completion_ids = self._current_canvas()
            context_mask = torch.ones_like(completion_ids)
        if self._loss_plan is not None:
            plans, stacked = [self._loss_plan], False
        else:
            if self._rollout_plans is None:
                self._rollout_plans = self._draw_plans(prompt_mask, completion_mask, self._num_plans())
            plans, stacked = self._rollout_plans, True

        def score(ids, mask, rows, positions, targets):
            with self.accelerator.autocast():
                out = model(input_ids=ids, attention_mask=mask, score_request=(rows, positions, targets))
            return out["logps"], out["entropies"]

        chunk = batch_size or input_ids.size(0)
        estimates, entropies = [], []
        for plan in plans:
            parts = [
                estimate_log_likelihood(
                    score,
                    prompt_ids[start : start + chunk],
                    prompt_mask[start : start + chunk],
                    completion_ids[start : start + chunk],
                    context_mask[start : start + chunk],
                    plan[start : start + chunk],
                    self.diffusion_adapter.mask_token_id,
                )
                for start in range(0, input_ids.size(0), chunk)
            ]
            estimates.append(_fit(torch.cat([p[0] for p in parts]), logits_to_keep))
            entropies.append(_fit(torch.cat([p[1] for p in parts]), logits_to_keep))
        if stacked:
            return torch.stack(estimates, 1), torch.stack(entropies, 1) if compute_entropy else None, None
        return estimates[0], entropies[0] if compute_entropy else None, None

    def _iteration_index(self) -> int:
        if not self.model.training:
            return 0
        return (self._step // self.args.steps_per_generation) % self.num_iterations

    def _compute_loss(self, model, inputs):
        iteration = self._iteration_index()
        inputs = dict(inputs)
        prompt_masks = inputs.get("coupled_prompt_masks")
        self._loss_plan = MaskPlan(
            inputs["coupled_masks"][:, iteration],
            inputs["coupled_coef"][:, iteration],
            None if prompt_masks is None else prompt_masks[:, iteration],
        )
        for key in ("old_per_token_logps", "ref_per_token_logps"):
            if inputs.get(key) is not None:
                inputs[key] = inputs[key][:, iteration]
        self._loss_canvas = inputs.get("coupled_canvas")
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._loss_plan = None
            self._loss_canvas = None

    # ------------------------------------------------------------------------------------------------------------
    # Model card
    # ------------------------------------------------------------------------------------------------------------
    def create_model_card(self, model_name=None, dataset_name=None, tags=None, **kwargs):
        """
        Write `README.md` in `output_dir` from `model_cards/coupled_grpo.md`: base model, datasets, rewards and weights,
        hyper-parameters, training results, a quickstart that samples with [`MaskedDiffusionSampler`], citations.
        `kwargs` go to [`~trl_ext.model_card.render_model_card`] (e.g. `license`, `eval_report`).
        """
        args = self.args
        adapter = self.diffusion_adapter
        mask_token = self._tokenizer.convert_ids_to_tokens(adapter.mask_token_id) if self._tokenizer else None
        write_model_card(
            self,
            "coupled_grpo.md",
            model_name=model_name,
            dataset_name=dataset_name,
            tags=["grpo", "code", *([tags] if isinstance(tags, str) else (tags or []))],
            pipeline_tag="text-generation",
            max_new_tokens=args.max_completion_length,
            diffusion_steps=args.diffusion_steps or args.max_completion_length,
            diffusion_alg=args.diffusion_alg,
            block_length=args.block_length,
            confidence_threshold=args.confidence_threshold,
            rollout_temperature=args.temperature,
            rollout_top_p=args.top_p,
            likelihood_estimator=args.likelihood_estimator,
            diffusion_family="Dream" if adapter.shift_logits else "LLaDA",
            mask_token=mask_token or adapter.mask_token_id,
            hyperparameters={
                "num_generations": args.num_generations,
                "temperature (rollout)": args.temperature,
                "top_p (rollout)": args.top_p,
                "max_prompt_length": getattr(args, "max_prompt_length", None),
                "max_completion_length": args.max_completion_length,
                "diffusion_steps": args.diffusion_steps or args.max_completion_length,
                "diffusion_alg": args.diffusion_alg,
                "block_length": args.block_length,
                "confidence_threshold": args.confidence_threshold,
                "likelihood_estimator": args.likelihood_estimator,
                "likelihood_context": args.likelihood_context,
                "mask ratio range": f"({args.mask_t_min}, {args.mask_t_max})",
                "epsilon": args.epsilon,
                "beta": args.beta,
                "num_iterations": args.num_iterations,
                "advantage_baseline": args.advantage_baseline,
                "scale_rewards": args.scale_rewards,
                "loss_type": args.loss_type,
                "sync_ref_model": args.sync_ref_model,
            },
            **kwargs,
        )


def _fit(values: torch.Tensor, length: int) -> torch.Tensor:
    """`values` `(B, L)` cut or zero-padded on the right to `(B, length)`."""
    if values.size(1) >= length:
        return values[:, :length]
    return torch.nn.functional.pad(values, (0, length - values.size(1)))


def _checkpoint_generation_config(model_id: str, revision: str | None):
    try:
        return load_generation_config(model_id, revision=revision)
    except Exception:  # unreachable: the paper's defaults apply (the model load reports the real problem)
        return None
