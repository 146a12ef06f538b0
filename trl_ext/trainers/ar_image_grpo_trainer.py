"""AR-GRPO: GRPO for autoregressive image-token generators (LlamaGen; arXiv 2508.06924)."""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from accelerate.utils import gather, is_peft_model
from datasets import Dataset, IterableDataset
from tokenizers import Tokenizer, models
from transformers import GenerationConfig, JanusVQVAE, PreTrainedTokenizerFast
from transformers.integrations import TensorBoardCallback
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context

from ..distributed import frozen_model_loading, materialize_frozen
from ..generation.image_tokens import ImageTokenSampler, encode_captions
from ..model_card import write_model_card
from ..models.llamagen import (
    LlamaGenForImageGeneration,
    check_image_tokenizer,
    decode_image_tokens,
    pixels_to_pil,
    vq_downsample_ratio,
)
from ._resume import ExactResumeMixin
from ._rollout import rollout_model
from ._validation import RunGuardsMixin, check_reference_model, validate_trainer_inputs
from .ar_image_grpo_config import ARImageGRPOConfig

CITATION = """\
@article{yuan2025argrpo,
  title   = {{AR-GRPO: Training Autoregressive Image Generation Models via Reinforcement Learning}},
  author  = {Shihao Yuan and Yahui Liu and Yang Yue and Jingyuan Zhang and Wangmeng Zuo and Qi Wang and Fuzheng Zhang and Guorui Zhou},
  journal = {arXiv preprint arXiv:2508.06924},
  year    = {2025}
}"""

CLASS_LABEL_COLUMN = "class_label"
CAPTION_EMBEDS_COLUMN = "caption_embeds"
CAPTION_MASK_COLUMN = "caption_mask"


def _placeholder_tokenizer() -> PreTrainedTokenizerFast:
    # TRL needs a tokenizer for pad ids; a class-conditional generator reads no text.
    backend = Tokenizer(models.WordLevel({"<pad>": 0}, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<pad>")


def _image_grid(images: list, columns: int = 8) -> np.ndarray:
    """Tile equally sized PIL images into one `(H, W, 3)` uint8 array, `columns` per row, 2-pixel white gutters."""
    arrays = [np.asarray(image.convert("RGB")) for image in images]
    height, width, _ = arrays[0].shape
    columns = min(columns, len(arrays))
    rows = -(-len(arrays) // columns)
    grid = np.full((rows * (height + 2) - 2, columns * (width + 2) - 2, 3), 255, dtype=np.uint8)
    for i, array in enumerate(arrays):
        r, c = divmod(i, columns)
        grid[r * (height + 2) : r * (height + 2) + height, c * (width + 2) : c * (width + 2) + width] = array
    return grid


class ARImageGRPOTrainer(RunGuardsMixin, ExactResumeMixin, GRPOTrainer):
    """
    GRPO for autoregressive image-token generators ([AR-GRPO](https://huggingface.co/papers/2508.06924)): a LlamaGen
    GPT samples image tokens, a VQ tokenizer decodes them, and the reward functions score the images.

    TRL's trainer does the rest (advantages, the clipped loss, KL, logging, PEFT, checkpoints, accelerate/DeepSpeed);
    three seams change:

    - `_generate`: rollouts come from an [`~trl_ext.generation.ImageTokenSampler`] (KV cache, batched
      classifier-free guidance) instead of `generate`; the `h * w` tokens of each image are decoded to PIL images
      once per rollout, batched on the device, and handed to the reward functions as `completions`, with the
      dataset's other columns (`class_label`, the caption in `prompt`) as keyword arguments. An image has no EOS:
      every completion is exactly `h * w` tokens.
    - `_get_per_token_logps_and_entropies`: per-token log-probabilities of the image tokens under the conditional
      branch (`cfg_in_logprobs=False`, the paper) or under the guided distribution the sampler drew from
      (`cfg_in_logprobs=True`).
    - `_generate_and_score_completions` / `_compute_loss`: each rollout row carries its condition (class id, or
      caption features computed once per rollout), so TRL's shuffle and split keep it aligned with its image.

    Conditions come from the dataset: class-to-image datasets have an integer `class_label` column (and a `prompt`,
    e.g. "a photo of a goldfish", for logging and text-based rewards); text-to-image datasets have the caption in
    `prompt`, encoded by `text_encoder` (a T5 encoder, with its tokenizer as `processing_class`), or precomputed
    features in a `caption_embeds` column (with an optional `caption_mask`).

    Args:
        model (`str` or [`~trl_ext.models.llamagen.LlamaGenForImageGeneration`]):
            The generator, or a folder/Hub id to load it from.
        reward_funcs:
            TRL reward functions; `completions` are PIL images.
        args ([`ARImageGRPOConfig`], *optional*):
            Training configuration.
        vq_model (`str` or [`~transformers.JanusVQVAE`]):
            The image tokenizer (a converted LlamaGen VQ-16, see `trl_ext.models.llamagen.convert`), or its folder.
        text_encoder ([`~transformers.T5EncoderModel`], *optional*):
            Encodes captions for text-to-image generators; frozen.
        processing_class ([`~transformers.PreTrainedTokenizerBase`], *optional*):
            The text encoder's tokenizer (t2i). Not needed for class-to-image.
        peft_config ([`~peft.PeftConfig`], *optional*):
            E.g. `LoraConfig(target_modules=["qkv_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])`.

    Example:

    ```python
    from datasets import Dataset
    from trl_ext import ARImageGRPOConfig, ARImageGRPOTrainer
    from trl_ext.rewards.pixel import brightness_reward
    from trl_ext.testing_image import make_tiny_llamagen, make_tiny_vq

    dataset = Dataset.from_dict({"prompt": ["class 1", "class 2"] * 4, "class_label": [1, 2] * 4})
    args = ARImageGRPOConfig("out", num_generations=4, per_device_train_batch_size=4, max_steps=2, beta=0.0,
                             bf16=False, use_cpu=True, report_to="none", gradient_checkpointing=False)
    trainer = ARImageGRPOTrainer(make_tiny_llamagen(), brightness_reward, args=args, train_dataset=dataset,
                                 vq_model=make_tiny_vq())
    trainer.train()
    ```
    """

    _tag_names = ["trl", "trl_ext", "ar-grpo", "llamagen", "image-generation"]
    _name = "AR-GRPO"
    _paper = {
        "title": "AR-GRPO: Training Autoregressive Image Generation Models via Reinforcement Learning",
        "id": "2508.06924",
        "citation": CITATION,
    }

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: ARImageGRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        vq_model: str | JanusVQVAE | None = None,
        text_encoder=None,
        **kwargs,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = ARImageGRPOConfig(f"{str(name or 'llamagen').split('/')[-1]}-AR-GRPO")
        elif not isinstance(args, ARImageGRPOConfig):
            raise TypeError(
                f"`args` must be an `ARImageGRPOConfig`, got `{type(args).__name__}`: guidance, the log-probability "
                "mode and image logging are configured there."
            )
        validate_trainer_inputs(model, reward_funcs, train_dataset=train_dataset, eval_dataset=eval_dataset)
        if isinstance(model, str):
            init_kwargs = dict(args.model_init_kwargs or {})
            if isinstance(init_kwargs.get("dtype"), str) and init_kwargs["dtype"] != "auto":
                init_kwargs["dtype"] = getattr(torch, init_kwargs["dtype"])
            model = LlamaGenForImageGeneration.from_pretrained(model, **init_kwargs)
        base = model.get_base_model() if is_peft_model(model) else model
        if not isinstance(base, LlamaGenForImageGeneration):
            raise TypeError(f"`model` must be a LlamaGenForImageGeneration, got `{type(base).__name__}`.")
        config = base.config
        if vq_model is None:
            raise ValueError("`vq_model` is required: the image tokenizer that decodes the generated tokens.")
        if isinstance(vq_model, str):
            with frozen_model_loading():  # every process keeps the whole decoder, never a ZeRO-3 partition
                vq_model = JanusVQVAE.from_pretrained(vq_model)
        vq_model, text_encoder = materialize_frozen(vq_model), materialize_frozen(text_encoder)
        self.image_size = check_image_tokenizer(vq_model, config.vocab_size, config.grid_size, args.image_size)
        self._check_dataset(train_dataset, config, text_encoder, "train_dataset")
        evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [("eval_dataset", eval_dataset)]
        for name, dataset in evals:
            self._check_dataset(dataset, config, text_encoder, str(name))
        check_reference_model(model, args.beta, kwargs.get("peft_config"))
        if config.condition_type == "t2i" and text_encoder is not None and processing_class is None:
            raise ValueError("A `text_encoder` needs its tokenizer as `processing_class`.")
        if getattr(base, "generation_config", None) is None:
            # TRL writes pad ids into the generation config, which models that cannot `generate` lack; LlamaGen is
            # sampled by ImageTokenSampler.
            base.generation_config = GenerationConfig()
        super().__init__(
            model,
            reward_funcs,
            args,
            train_dataset,
            eval_dataset,
            processing_class or _placeholder_tokenizer(),
            **kwargs,
        )
        if processing_class is None:
            self.processing_class = None  # the placeholder only supplies pad ids (kept in `_tokenizer`); never saved
        device = self.accelerator.device
        self.generator_config = config
        self.vq_model = vq_model.to(device).eval().requires_grad_(False)
        self.text_encoder = None if text_encoder is None else text_encoder.to(device).eval().requires_grad_(False)
        self.sampler = ImageTokenSampler(
            cfg_scale=args.cfg_scale,
            cfg_schedule=args.cfg_schedule,
            cfg_interval=args.cfg_interval,
            temperature=args.temperature,
            top_k=args.top_k or None,
            top_p=args.top_p if args.top_p < 1.0 else None,
        )
        # A private RNG: reproducible per process, and independent of the global RNG the data order depends on.
        self._sample_generator = torch.Generator(device=device).manual_seed(
            args.seed + 1009 * self.accelerator.process_index
        )
        self._rollout_condition: dict[str, torch.Tensor] | None = None
        self._rollout_prompt_ids: list[list[int]] | None = None
        self._loss_condition: dict[str, torch.Tensor] | None = None
        self._images_to_log: tuple[list, list[str]] | None = None
        self._last_image_log_step: int | None = None

    # ------------------------------------------------------------------------------------------------------------
    # Conditions
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _check_dataset(dataset, config, text_encoder, name: str) -> None:
        if dataset is None or not isinstance(dataset, (Dataset, IterableDataset)) or dataset.column_names is None:
            return
        columns = set(dataset.column_names)
        if "prompt" not in columns:
            raise ValueError(
                f"`{name}` needs a `prompt` column (the caption for t2i; for c2i a text such as 'a photo of a "
                "goldfish', used for logging and text-based rewards)."
            )
        if columns & {"image", "images"}:
            raise ValueError(
                f"`{name}` has an `image`/`images` column, which TRL treats as vision-language input. Rename it."
            )
        if config.condition_type == "c2i" and CLASS_LABEL_COLUMN not in columns:
            raise ValueError(f"A class-to-image generator needs an integer `{CLASS_LABEL_COLUMN}` column in `{name}`.")
        if config.condition_type == "t2i" and CAPTION_EMBEDS_COLUMN not in columns and text_encoder is None:
            raise ValueError(
                f"A text-to-image generator needs a `text_encoder` (and its tokenizer as `processing_class`) or "
                f"precomputed features in a `{CAPTION_EMBEDS_COLUMN}` column of `{name}`."
            )

    def _build_condition(self, inputs: list[dict]) -> tuple[dict[str, torch.Tensor], list[list[int]]]:
        """The condition tensors of the rollout rows and the ids TRL records as their prompt."""
        device = self.accelerator.device
        config = self.generator_config
        if config.condition_type == "c2i":
            labels = [example[CLASS_LABEL_COLUMN] for example in inputs]
            bad = sorted(
                {label for label in labels if not (isinstance(label, int) and 0 <= label < config.num_classes)}
            )
            if bad:
                raise ValueError(
                    f"`{CLASS_LABEL_COLUMN}` must be an integer in [0, {config.num_classes}) (the generator's "
                    f"num_classes); got {bad[:10]}."
                )
            return {"class_labels": torch.tensor(labels, device=device)}, [[label] for label in labels]
        if CAPTION_EMBEDS_COLUMN in inputs[0]:
            embeds = torch.stack(
                [torch.as_tensor(example[CAPTION_EMBEDS_COLUMN], dtype=torch.float32) for example in inputs]
            )
            mask = None
            if CAPTION_MASK_COLUMN in inputs[0]:
                mask = torch.stack([torch.as_tensor(example[CAPTION_MASK_COLUMN]) for example in inputs]).to(device)
            embeds, mask = self._unwrapped_generator().prepare_captions(embeds.to(device), mask)
            return {"caption_embeds": embeds, "caption_mask": mask}, [[0] * int(m.sum()) for m in mask]
        # Each prompt is repeated num_generations times: encode the distinct captions once.
        captions = [example["prompt"] for example in inputs]
        unique = list(dict.fromkeys(captions))
        embeds, mask, tokens = encode_captions(
            self._unwrapped_generator(), self.text_encoder, self.processing_class, unique, device,
            max_length=self.args.max_caption_length,
        )  # fmt: skip
        index = torch.tensor([unique.index(caption) for caption in captions], device=device)
        ids = [row[m.bool()].tolist() for row, m in zip(tokens["input_ids"], tokens["attention_mask"], strict=True)]
        return {"caption_embeds": embeds[index], "caption_mask": mask[index]}, [ids[i] for i in index.tolist()]

    def _unwrapped_generator(self) -> LlamaGenForImageGeneration:
        model = self.accelerator.unwrap_model(self.model)
        return model.get_base_model() if is_peft_model(model) else model

    # ------------------------------------------------------------------------------------------------------------
    # Rollouts
    # ------------------------------------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        self._rollout_condition, self._rollout_prompt_ids = self._build_condition(inputs)
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            condition, self._rollout_condition = self._rollout_condition, None
        output.update(condition)  # per-row tensors: shuffled and split with the batch
        return output

    def _generate(self, prompts: list):
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        start = time.perf_counter()
        with rollout_model(self, "ImageTokenSampler.sample") as unwrapped_model:
            out = self.sampler.sample(
                unwrapped_model,
                **self._rollout_condition,
                generator=self._sample_generator,
                # Only the guided log-probs are the distribution the trainer scores; otherwise they would mislead.
                return_logprobs=self.args.cfg_in_logprobs,
            )
        with profiling_context(self, "decode_image_tokens"), torch.no_grad():
            pixels = decode_image_tokens(self.vq_model, out.image_token_ids.to(device))
            images = pixels_to_pil(pixels)
        elapsed = time.perf_counter() - start

        num_tokens = out.image_token_ids.size(1)
        prompt_ids = self._rollout_prompt_ids
        lengths = torch.tensor([len(ids) + num_tokens for ids in prompt_ids], device=device)
        if mode == "train":
            self.state.num_input_tokens_seen += int(gather(lengths).sum())
        self._metrics[mode]["num_tokens"] = [self.state.num_input_tokens_seen]
        rate = gather(torch.tensor([len(images) / elapsed], device=device)).sum().item()
        self._metrics[mode]["rollout/images_per_second"].append(rate)
        self._metrics[mode]["rollout/forwards_per_image"].append(float(out.num_forwards))

        completion_ids = out.image_token_ids.tolist()
        logprobs = None if out.logprobs is None else out.logprobs.float().tolist()
        return prompt_ids, completion_ids, None, images, logprobs, {}, None, []

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.accelerator.is_main_process and self._should_log_images():
            rows = slice(0, len(prompts))  # the main process's rows come first in the gathered rewards
            totals = (rewards_per_func[rows] * self.reward_weights.to(rewards_per_func.device)).nansum(1).tolist()
            count = min(self.args.num_images_to_log, len(completions))
            captions = [f"{p} | reward {r:.3f}" for p, r in zip(prompts[:count], totals[:count], strict=True)]
            self._images_to_log = (list(completions[:count]), captions)
            self._last_image_log_step = self.state.global_step
        # TRL logs `completions` next, gathering them from every process at every step; images would be pickled
        # across ranks for nothing (they are logged above, on their own schedule). Describe them instead, in place.
        for i, image in enumerate(completions):
            completions[i] = f"<image {image.width}x{image.height}>"
        return rewards_per_func

    # ------------------------------------------------------------------------------------------------------------
    # Log-probabilities
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
        Log-probabilities (and entropies) of the `h * w` image tokens, `(B, logits_to_keep)`: under the conditional
        branch, or under the sampler's guided distribution with `cfg_in_logprobs=True`.
        """
        condition = self._loss_condition if self._loss_condition is not None else self._rollout_condition
        num_tokens = self.generator_config.num_image_tokens
        image_ids = input_ids[:, -logits_to_keep:][:, :num_tokens]
        chunk = batch_size or image_ids.size(0)
        logps, entropies = [], []
        for start in range(0, image_ids.size(0), chunk):
            rows = slice(start, start + chunk)
            with self.accelerator.autocast():
                lp, ent = self.sampler.score(
                    model,
                    image_ids[rows],
                    **{k: v[rows] for k, v in condition.items()},
                    guided=self.args.cfg_in_logprobs,
                    compute_entropy=compute_entropy,
                )
            logps.append(lp)
            entropies.append(ent)
        logps = torch.cat(logps)
        entropies = torch.cat(entropies) if compute_entropy else None
        if logits_to_keep > num_tokens:  # `pad_to_multiple_of` padded the completions
            logps = torch.nn.functional.pad(logps, (0, logits_to_keep - num_tokens))
            if entropies is not None:
                entropies = torch.nn.functional.pad(entropies, (0, logits_to_keep - num_tokens))
        return logps, entropies, None

    def _compute_loss(self, model, inputs):
        keys = (
            ("class_labels",) if self.generator_config.condition_type == "c2i" else ("caption_embeds", "caption_mask")
        )
        self._loss_condition = {k: inputs[k] for k in keys}
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._loss_condition = None

    # ------------------------------------------------------------------------------------------------------------
    # Image logging
    # ------------------------------------------------------------------------------------------------------------
    def _should_log_images(self) -> bool:
        every = self.args.log_images_steps
        if not every or not self.model.training or not self.args.report_to:
            return False
        return self._last_image_log_step is None or self.state.global_step >= self._last_image_log_step + every

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        if self._images_to_log is None or not self.accelerator.is_main_process:
            return
        images, captions = self._images_to_log
        self._images_to_log = None
        step = self.state.global_step
        report_to = self.args.report_to
        if "tensorboard" in report_to:
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
                    callback.tb_writer.add_image("rollouts", _image_grid(images), step, dataformats="HWC")
                    callback.tb_writer.add_text(
                        "rollouts", "\n\n".join(f"{i}. {c}" for i, c in enumerate(captions)), step
                    )
        if "wandb" in report_to:
            import wandb

            if wandb.run is not None:
                wandb.log({"rollouts": [wandb.Image(im, caption=c) for im, c in zip(images, captions, strict=True)]})

    # ------------------------------------------------------------------------------------------------------------
    # Model card
    # ------------------------------------------------------------------------------------------------------------
    def create_model_card(self, model_name=None, dataset_name=None, tags=None, **kwargs):
        """
        Write `README.md` in `output_dir` from `model_cards/ar_grpo.md`, and the models its quickstart loads next to
        the generator: the VQ image tokenizer in `vq/` and, for t2i, a text encoder that is not a Hub model (with its
        tokenizer) in `text_encoder/`, so that the folder, pushed as is, is a complete repository. `kwargs` go to
        [`~trl_ext.model_card.render_model_card`] (e.g. `license`, `eval_report`).
        """
        if not self.is_world_process_zero():
            return
        args = self.args
        config = self.generator_config
        output_dir = args.output_dir
        self.vq_model.save_pretrained(os.path.join(output_dir, "vq"))
        text_encoder_name, text_encoder_in_repo = "google/flan-t5-xl", False
        if self.text_encoder is not None:
            name = self.text_encoder.config._name_or_path or ""
            if name and not os.path.isdir(name) and name.count("/") == 1:
                text_encoder_name = name
            else:
                text_encoder_in_repo = True
                self.text_encoder.save_pretrained(os.path.join(output_dir, "text_encoder"))
                if self.processing_class is not None:
                    self.processing_class.save_pretrained(os.path.join(output_dir, "text_encoder"))
        example_classes = (
            [207, 360, 387, 974] if config.num_classes == 1000 else list(range(min(4, config.num_classes)))
        )
        write_model_card(
            self,
            "ar_grpo.md",
            model_name=model_name,
            dataset_name=dataset_name,
            tags=[
                "grpo",
                "text-to-image" if config.condition_type == "t2i" else "class-conditional",
                *([tags] if isinstance(tags, str) else (tags or [])),
            ],
            # The Hub has no class-conditional task: a class-to-image generator is filed under unconditional generation.
            pipeline_tag="text-to-image" if config.condition_type == "t2i" else "unconditional-image-generation",
            library_name="trl_ext",
            hyperparameters={
                "num_generations": args.num_generations,
                "cfg_scale (rollout)": args.cfg_scale,
                "cfg_schedule": args.cfg_schedule,
                "cfg_interval": args.cfg_interval,
                "cfg_in_logprobs": args.cfg_in_logprobs,
                "temperature (rollout)": args.temperature,
                "top_k": args.top_k or None,
                "top_p": args.top_p,
                "beta": args.beta,
                "epsilon": args.epsilon,
                "loss_type": args.loss_type,
                "scale_rewards": args.scale_rewards,
                "image_size": self.image_size,
            },
            condition_type=config.condition_type,
            num_classes=getattr(config, "num_classes", None),
            example_classes=example_classes,
            image_size=self.image_size,
            grid_size=config.grid_size,
            vq_stride=vq_downsample_ratio(self.vq_model),
            codebook_size=config.vocab_size,
            cfg_scale=args.cfg_scale,
            cfg_in_logprobs=args.cfg_in_logprobs,
            beta=args.beta,
            temperature=args.temperature,
            top_k=args.top_k or None,
            top_p=args.top_p,
            max_caption_length=args.max_caption_length or config.num_condition_tokens,
            text_encoder_name=text_encoder_name,
            text_encoder_in_repo=text_encoder_in_repo,
            is_peft=is_peft_model(self.accelerator.unwrap_model(self.model)),
            vq_model_name=self.vq_model.config._name_or_path or None,
            **kwargs,
        )

