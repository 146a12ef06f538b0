"""Configuration of the Dream family (Dream-v0, DiffuCoder), read from the checkpoints' `config.json` as published."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import Qwen2Config

from .._native import RemoteCodeFreeConfigMixin


@strict
class DreamConfig(RemoteCodeFreeConfigMixin, Qwen2Config):
    r"""
    Configuration of a Dream-style masked-diffusion LM (`Dream-org/Dream-v0-*-7B`, `apple/DiffuCoder-7B-*`): a Qwen2
    architecture run with bidirectional attention whose logits are read shifted by one (the logit at position `i - 1`
    scores token `i`).

    The fields are Qwen2's (`hidden_size`, `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`,
    `intermediate_size`, `rope_theta`, `rope_scaling`, `rms_norm_eps`, `tie_word_embeddings`, ...), exactly as the
    checkpoints' `config.json` spells them, plus:

    Args:
        mask_token_id (`int`, *optional*):
            Id of `<|mask|>` (151666 in the published checkpoints).

    The checkpoints' `auto_map` (pointing at their transformers-4 remote code) is dropped: the native classes in
    `trl_ext.models.dream` serve `model_type="Dream"` once `trl_ext` is imported.
    """

    model_type = "Dream"
    mask_token_id: int | None = None

    def __post_init__(self, **kwargs):
        # The published config.json points `auto_map` at remote code written for transformers 4; a saved copy must
        # not send `trust_remote_code=True` loaders to files that are not there.
        kwargs.pop("auto_map", None)
        super().__post_init__(**kwargs)
        self._forget_remote_code()

    @property
    def diffusion_type(self) -> str:
        return "dream"


__all__ = ["DreamConfig"]
