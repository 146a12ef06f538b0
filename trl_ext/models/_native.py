"""
What the native masked-diffusion model classes share: strict weight loading, the list of families that load without
remote code, and the guard that keeps the checkpoints' transformers-4 remote code from running.
"""

from __future__ import annotations

import json
import logging

from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# `model_type` of a checkpoint's config.json (as published) -> the diffusion family of its native class.
NATIVE_MODEL_TYPES: dict[str, str] = {"Dream": "dream", "llada": "llada"}

_warned_remote_code: set[str] = set()


class StrictLoadingMixin:
    """
    `from_pretrained` that refuses a checkpoint whose weights do not match the model exactly: every missing,
    unexpected or mis-shaped key is an error naming the keys, instead of transformers' warning (which leaves missing
    weights randomly initialised and trains a silently different model).
    """

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        wants_info = kwargs.pop("output_loading_info", False)
        # Mis-shaped weights are collected (and named in our error) rather than raised by transformers with a pointer
        # to its log; a caller who passes `ignore_mismatched_sizes=True` asked for them to be re-initialised.
        allow_mismatch = kwargs.get("ignore_mismatched_sizes", False)
        kwargs["ignore_mismatched_sizes"] = True
        generation_config = kwargs.pop("generation_config", None)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        _load_generation_config(model, args[0] if args else kwargs.get("pretrained_model_name_or_path"),
                                generation_config, kwargs)  # fmt: skip
        problems = []
        kinds = ("missing_keys", "unexpected_keys") + (() if allow_mismatch else ("mismatched_keys",))
        for kind in kinds:
            keys = sorted(
                f"{k[0]} (checkpoint {tuple(k[1])}, model {tuple(k[2])})"
                if isinstance(k, tuple) and len(k) == 3
                else str(k)
                for k in (info.get(kind) or [])
            )
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                problems.append(f"{kind.replace('_', ' ')}: {shown}")
        if info.get("error_msgs"):
            problems.append("errors: " + "; ".join(info["error_msgs"]))
        if problems:
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise ValueError(
                f"The checkpoint {source!r} does not match {cls.__name__} ({model.config.model_type!r}): "
                + " | ".join(problems)
                + ". Every weight must be used and present: check that the checkpoint is of this family and that "
                "the config's sizes (layers, heads, hidden size, vocabulary) match the weights."
            )
        return (model, info) if wants_info else model


def _load_generation_config(model, source, generation_config, kwargs) -> None:
    """
    The checkpoint's `generation_config.json` (stop tokens and the diffusion sampling defaults: `steps`, `alg`,
    `temperature`, ...), which transformers loads only for `GenerationMixin` models.
    """
    if generation_config is not None:
        model.generation_config = generation_config
        return
    if source is None:
        return
    hub = {k: kwargs[k] for k in ("revision", "subfolder", "cache_dir", "token", "local_files_only") if k in kwargs}
    loaded = load_generation_config(source, **hub)
    if loaded is not None:
        model.generation_config = loaded


# Fields of Dream's `DreamGenerationConfig` (and of the configs CoupledGRPOTrainer saves) that transformers 5's
# `GenerationConfig` does not know and drops on load.
DIFFUSION_GENERATION_KEYS = (
    "steps",
    "alg",
    "alg_temp",
    "eps",
    "mask_token_id",
    "block_length",
    "confidence_threshold",
)


def load_generation_config(source, **hub_kwargs):
    """
    `GenerationConfig.from_pretrained(source)` with the diffusion sampling fields kept, or `None` when the checkpoint
    has no `generation_config.json`.
    """
    from transformers import GenerationConfig
    from transformers.utils.hub import cached_file

    try:
        config = GenerationConfig.from_pretrained(source, **hub_kwargs)
        subfolder = hub_kwargs.get("subfolder") or ""
        resolved = cached_file(
            source,
            "generation_config.json",
            subfolder=subfolder,
            **{k: v for k, v in hub_kwargs.items() if k != "subfolder"},
        )
        with open(resolved, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError):
        return None
    for key in DIFFUSION_GENERATION_KEYS:
        if key in raw:
            setattr(config, key, raw[key])
    return config


class DiffusionLMMixin:
    """
    What the native masked-diffusion LM classes share: a `generation_config` (stop tokens and the diffusion sampling
    defaults live there), no left-to-right `generate`, and a forward that returns the unshifted logits of the
    backbone's hidden states through `_project` (the family's output layer).
    """

    @classmethod
    def can_generate(cls) -> bool:
        # Gives the model a `generation_config` (loaded from and saved to generation_config.json).
        return True

    def generate(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} is a masked-diffusion LM: it does not decode left to right. Sample with "
            "`trl_ext.generation.MaskedDiffusionSampler.from_model(model, tokenizer).sample(model, input_ids, "
            "attention_mask)`."
        )

    def _project(self, hidden):
        return self.get_output_embeddings()(hidden)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        cache=None,
        inputs_embeds=None,
        use_cache=None,
        logits_to_keep: int = 0,
        past_key_values=None,
        **kwargs,
    ):
        """
        Unshifted logits `(batch_size, seq_len, vocab)` (the last `logits_to_keep` positions if > 0). Arguments as
        the backbone's: a 2-D padding mask (or a prepared 4-D mask), positions counted from real tokens by default,
        an optional `Cache` of earlier positions.
        """
        from transformers.modeling_outputs import CausalLMOutputWithPast

        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self._project(hidden), cache=out.cache)


def backbone_inputs(config, embed, input_ids, inputs_embeds, attention_mask, position_ids, cache):
    """
    The embeddings, positions and attention mask a native backbone runs on: positions count the real tokens of a 2-D
    padding mask (after `cache`'s length without one), and the bidirectional mask is built by transformers for the
    configured attention implementation (a prepared 4-D mask is used as is).
    """
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
    if inputs_embeds is None:
        inputs_embeds = embed(input_ids)
    if position_ids is None:
        length = inputs_embeds.shape[1]
        if attention_mask is not None and attention_mask.dim() == 2:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
        else:
            past = cache.get_seq_length() if cache is not None else 0
            position_ids = (torch.arange(length, device=inputs_embeds.device) + past)[None]
    mask = create_bidirectional_mask(
        config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache
    )
    return inputs_embeds, position_ids, mask


class RemoteCodeFreeConfigMixin:
    """
    Configs of checkpoints whose `auto_map` points at transformers-4 remote code: the native class serves the
    `model_type`, so the map is dropped (a saved copy must not send `trust_remote_code=True` loaders to files that are
    not there) and never written back.
    """

    def _forget_remote_code(self) -> None:
        self.auto_map = {}

    def to_dict(self) -> dict:
        output = super().to_dict()
        if not output.get("auto_map"):
            output.pop("auto_map", None)
        return output


def native_model_type(model_id: str, revision: str | None = None, **hub_kwargs) -> str | None:
    """The `model_type` of the checkpoint at `model_id` if a native class serves it, else `None` (never raises)."""
    from transformers import PretrainedConfig

    try:
        config_dict, _ = PretrainedConfig.get_config_dict(model_id, revision=revision, **hub_kwargs)
    except Exception:  # a missing folder or an unreachable Hub is reported by the real load, with its own message
        return None
    model_type = config_dict.get("model_type")
    return model_type if model_type in NATIVE_MODEL_TYPES else None


def resolve_trust_remote_code(model_id: str, trust_remote_code: bool | None, revision: str | None = None) -> bool:
    """
    `trust_remote_code` to load `model_id` with: `False` for a Dream/DiffuCoder/LLaDA checkpoint (its remote code was
    written for transformers 4 and runs silently wrong on 5; the native class is used and the log says so once),
    otherwise what the user asked.
    """
    if not trust_remote_code:
        return bool(trust_remote_code)
    model_type = native_model_type(model_id, revision)
    if model_type is None:
        return True
    if model_id not in _warned_remote_code:
        _warned_remote_code.add(model_id)
        logger.warning(
            "%s is a %r checkpoint: loading it with trl_ext's native class instead of its remote code "
            "(`trust_remote_code=True` is ignored for this model; the remote code targets transformers 4).",
            model_id,
            model_type,
        )
    return False


def load_diffusion_tokenizer(name_or_path: str, trust_remote_code: bool | None = None, **kwargs):
    """
    The tokenizer of a masked-diffusion checkpoint, without remote code where a native class exists: Dream and
    DiffuCoder ship a `DreamTokenizer` (remote code, transformers 4) that is Qwen2's byte-level BPE over the same
    `vocab.json`/`merges.txt`, so it loads as [`~transformers.Qwen2Tokenizer`] (identical ids); LLaDA's is a plain
    `PreTrainedTokenizerFast`. Anything else goes to `AutoTokenizer` with the `trust_remote_code` asked for.
    Keyword arguments (`revision`, `padding_side`, ...) are passed on.
    """
    from transformers import AutoTokenizer, Qwen2Tokenizer
    from transformers.utils.hub import cached_file

    revision = kwargs.get("revision")
    tokenizer_class = None
    try:
        path = cached_file(
            name_or_path, "tokenizer_config.json", revision=revision, _raise_exceptions_for_missing_entries=False
        )
        if path is not None:
            with open(path, encoding="utf-8") as handle:
                tokenizer_class = json.load(handle).get("tokenizer_class")
    except Exception:  # reported by the real load below
        pass
    if tokenizer_class == "DreamTokenizer":
        return Qwen2Tokenizer.from_pretrained(name_or_path, **kwargs)
    if trust_remote_code:
        trust_remote_code = resolve_trust_remote_code(name_or_path, trust_remote_code, revision)
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=bool(trust_remote_code), **kwargs)


def unwrap_model(model):
    """The model inside DDP/FSDP wrappers (`.module`) and PEFT (`.get_base_model()`)."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def check_native_model(model) -> None:
    """
    Raise if `model` is an instance of a Dream/LLaDA checkpoint's remote code (loaded with `trust_remote_code=True`)
    rather than the native class: that code runs silently wrong on transformers 5.
    """
    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in NATIVE_MODEL_TYPES and type(inner).__module__.startswith("transformers_modules"):
        raise ValueError(
            f"The model is an instance of the checkpoint's remote code ({type(inner).__module__}."
            f"{type(inner).__name__}), which was written for transformers 4 and computes wrong logits on "
            "transformers 5. Load it without `trust_remote_code`: `import trl_ext` registers native classes, so "
            "`AutoModelForCausalLM.from_pretrained(name)` returns the native one (or pass the name or folder as a "
            "string to the trainer)."
        )


def is_native_model(model) -> bool:
    return isinstance(model, PreTrainedModel) and isinstance(model, StrictLoadingMixin)
