"""
What the native masked-diffusion model classes share: strict weight loading, the list of families that load without
remote code, and the guard that keeps the checkpoints' transformers-4 remote code from running.
"""

from __future__ import annotations

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
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        problems = []
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            keys = sorted(str(k) for k in (info.get(kind) or []))
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


def check_native_model(model) -> None:
    """
    Raise if `model` is an instance of a Dream/LLaDA checkpoint's remote code (loaded with `trust_remote_code=True`)
    rather than the native class: that code runs silently wrong on transformers 5.
    """
    inner = model
    while hasattr(inner, "module"):
        inner = inner.module
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
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
