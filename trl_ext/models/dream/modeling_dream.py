"""
Native transformers-5 implementation of the Dream family (Dream-v0, DiffuCoder).

The architecture is Qwen2's, run bidirectionally: every real token attends to every real token, padding is never
attended to, and positions count real tokens only (a left-padded row has the positions of the unpadded one). The
weight names are the checkpoints' (`model.embed_tokens`, `model.layers.N.self_attn.{q,k,v,o}_proj`,
`model.layers.N.mlp.{gate,up,down}_proj`, `model.norm`, `lm_head`), so the published safetensors load strictly.

The logits are returned unshifted, as the checkpoints' own code returns them; the family's shift (the logit at
`i - 1` scores token `i`) is applied by the samplers and likelihood estimators through
[`~trl_ext.models.MaskedDiffusionAdapter`].
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RMSNorm, Qwen2RotaryEmbedding

from .._native import DiffusionLMMixin, StrictLoadingMixin, backbone_inputs
from .configuration_dream import DreamConfig


class DreamPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config_class = DreamConfig
    config: DreamConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Qwen2DecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class DreamBaseModel(DreamPreTrainedModel):
    """The bidirectional Qwen2 backbone: embeddings, decoder layers and the final norm."""

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        if config.use_sliding_window:
            raise ValueError(
                "`use_sliding_window=True` is not supported by the Dream family (the published checkpoints use full "
                "attention); set it to false in config.json."
            )
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([Qwen2DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        for layer in self.layers:
            layer.self_attn.is_causal = False
        self.norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): token ids, masked positions holding the
                mask token.
            attention_mask (`torch.Tensor`, *optional*): a 2-D padding mask `(batch_size, kv_len)` (1 = real token),
                or a prepared 4-D mask used as is.
            position_ids (`torch.LongTensor`, *optional*): defaults to the count of real tokens before each position
                (from `attention_mask`), so left padding does not shift positions.
            cache (`Cache`, *optional*): keys and values of earlier positions (prefix caching).
        """
        cache = cache if cache is not None else past_key_values
        hidden, position_ids, mask = backbone_inputs(
            self.config, self.embed_tokens, input_ids, inputs_embeds, attention_mask, position_ids, cache
        )
        position_embeddings = self.rotary_emb(hidden, position_ids)
        for layer in self.layers:
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                position_embeddings=position_embeddings,
                **kwargs,
            )
        hidden = self.norm(hidden)
        return BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache if use_cache else None)


class DreamModel(DiffusionLMMixin, DreamPreTrainedModel):
    """
    A Dream/DiffuCoder masked-diffusion LM: [`DreamBaseModel`] and its LM head. Named like the checkpoints' own class
    and registered for `AutoModel` and `AutoModelForCausalLM` (so TRL's model factory and reference-model creation
    build it from a Hub id or folder without remote code).

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.models.dream import DreamConfig, DreamModel
    >>> config = DreamConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...                      num_attention_heads=4, num_key_value_heads=2, mask_token_id=63)
    >>> model = DreamModel(config)
    >>> model(input_ids=torch.tensor([[1, 2, 63]])).logits.shape
    torch.Size([1, 3, 64])
    ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value


__all__ = ["DreamBaseModel", "DreamModel", "DreamPreTrainedModel"]
