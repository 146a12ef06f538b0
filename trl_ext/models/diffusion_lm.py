"""
What a trainer or sampler must know to drive a masked-diffusion language model.

Two families matter today:

- **Dream-style** (Dream, DiffuCoder): a Qwen2 backbone run with bidirectional attention whose logits are *shifted*
  like an autoregressive model's: the logit at position `i - 1` scores token `i`.
- **LLaDA-style** (LLaDA, d1): bidirectional, logits *not* shifted: the logit at position `i` scores token `i`.

The published checkpoints (`model_type` `"Dream"` / `"llada"`) load as the native classes of
[`trl_ext.models.dream`] and [`trl_ext.models.llada`], which take a 2-D padding mask and build their own
bidirectional attention. A stock transformers model (Qwen2, Llama, ...) whose config declares `diffusion_type`
becomes bidirectional when it is given a 4-D additive attention mask, which is what the adapter passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from trl.kernels import ChunkedLogProbFunction

from ._native import check_native_model, is_native_model
from ._native import unwrap_model as _unwrap

DiffusionType = Literal["dream", "llada"]

# `model_type` of the public remote-code checkpoints -> family.
_KNOWN_MODEL_TYPES: dict[str, DiffusionType] = {"dream": "dream", "llada": "llada", "lladamoe": "llada"}


@dataclass
class MaskedDiffusionAdapter:
    """
    Calls a masked-diffusion LM the way it was trained: bidirectional attention that excludes padding, positions that
    skip left padding, and the family's logit shift.

    Args:
        mask_token_id (`int`):
            Id of the mask token (`<|mask|>` for Dream/DiffuCoder).
        shift_logits (`bool`):
            `True` for Dream-style models (logit `i - 1` scores token `i`), `False` for LLaDA-style ones.
        pass_attention_mask (`bool`, *optional*, defaults to `True`):
            Whether the model is given an attention mask and positions at all.
        native (`bool`, *optional*, defaults to `False`):
            Whether the model is one of the native Dream/LLaDA classes, which take the 2-D padding mask and build
            their bidirectional attention themselves (any attention implementation); other models get a 4-D mask.

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.models import MaskedDiffusionAdapter
    >>> from trl_ext.testing import make_tokenizer, make_tiny_dream_lm
    >>> tokenizer = make_tokenizer()
    >>> model = make_tiny_dream_lm(tokenizer)
    >>> adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    >>> ids = torch.tensor([[1, 2, adapter.mask_token_id]])
    >>> adapter.completion_logits(model, ids, torch.ones_like(ids), num_completion=1).shape
    torch.Size([1, 1, 260])
    ```
    """

    mask_token_id: int
    shift_logits: bool
    pass_attention_mask: bool = True
    native: bool = False

    @classmethod
    def from_model(
        cls,
        model,
        tokenizer=None,
        mask_token_id: int | None = None,
        diffusion_type: str = "auto",
    ) -> MaskedDiffusionAdapter:
        """
        Work out mask token and logit shift for `model`, raising a clear error when it is not a masked-diffusion LM.

        Args:
            model ([`~transformers.PreTrainedModel`] or `PeftModel`):
                The model.
            tokenizer (*optional*):
                Its tokenizer; its `mask_token_id` is used when set.
            mask_token_id (`int`, *optional*):
                Overrides the tokenizer's and the config's mask token.
            diffusion_type (`str`, *optional*, defaults to `"auto"`):
                `"dream"`, `"llada"` or `"auto"` (read from the model's config).
        """
        config = _base_config(model)
        if diffusion_type == "auto":
            declared = declared_diffusion_type(config)
            if declared is None:
                raise ValueError(
                    f"The model ({type(_unwrap(model)).__name__}, model_type={config.model_type!r}) is not a known "
                    "masked-diffusion LM: an autoregressive (causal) model cannot be trained with diffusion "
                    "sampling and masked log-likelihoods. Use a Dream/DiffuCoder or LLaDA checkpoint, or, if this "
                    "model really was trained as a masked-diffusion LM, set `diffusion_type` to 'dream' (logits "
                    "shifted by one) or 'llada' (not shifted)."
                )
            diffusion_type = declared
        if diffusion_type not in ("dream", "llada"):
            raise ValueError(f"`diffusion_type` must be 'auto', 'dream' or 'llada', got {diffusion_type!r}.")
        if mask_token_id is None and tokenizer is not None:
            mask_token_id = getattr(tokenizer, "mask_token_id", None)
        if mask_token_id is None:
            mask_token_id = getattr(config, "mask_token_id", None)
        if mask_token_id is None:
            raise ValueError(
                "No mask token: the tokenizer has no `mask_token` and the model config no `mask_token_id`. Set "
                "`mask_token_id` (e.g. the id of '<|mask|>' for Dream/DiffuCoder, 126336 for LLaDA)."
            )
        vocab_size = config.get_text_config().vocab_size if hasattr(config, "get_text_config") else None
        if vocab_size is not None and not 0 <= mask_token_id < vocab_size:
            raise ValueError(f"`mask_token_id` {mask_token_id} is outside the model's vocabulary (size {vocab_size}).")
        check_native_model(model)
        native = is_native_model(_unwrap(model))
        # Remote-code LLaDA variants without a native class (e.g. `lladamoe`) are bidirectional by construction.
        is_llada_remote = not native and str(config.model_type).lower().startswith("llada")
        return cls(
            mask_token_id=int(mask_token_id),
            shift_logits=diffusion_type == "dream",
            pass_attention_mask=not is_llada_remote,
            native=native,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Attention and positions
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def attention_inputs(attention_mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Turn a 2-D padding mask `(B, L)` into a bidirectional 4-D additive mask `(B, 1, L, L)` and position ids.

        Real tokens attend to every real token and never to padding. A padding query attends to itself only, so
        that no attention row is empty (an empty row gives NaN, which then leaks through `0 * NaN` in the next
        layer). Positions count real tokens only, so a left-padded row has the same positions as the unpadded one.
        """
        valid = attention_mask.bool()
        allowed = valid[:, None, None, :] & valid[:, None, :, None]
        allowed = allowed | torch.eye(valid.size(1), dtype=torch.bool, device=valid.device)
        additive = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
        additive.masked_fill_(~allowed, torch.finfo(dtype).min)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return additive, position_ids

    def model_kwargs(self, model, attention_mask: torch.Tensor) -> dict:
        if not self.pass_attention_mask:
            return {}
        if self.native:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            return {"attention_mask": attention_mask, "position_ids": position_ids}
        mask, position_ids = self.attention_inputs(attention_mask, _compute_dtype(model))
        return {"attention_mask": mask, "position_ids": position_ids}

    # ------------------------------------------------------------------------------------------------------------
    # Scoring
    # ------------------------------------------------------------------------------------------------------------
    def logit_positions(self, token_positions: torch.Tensor) -> torch.Tensor:
        """Index of the logit that scores the token at `token_positions` (shifted models read one to the left)."""
        return token_positions - 1 if self.shift_logits else token_positions

    def completion_logits(self, model, input_ids, attention_mask, num_completion: int) -> torch.Tensor:
        """
        Logits scoring the last `num_completion` tokens of `input_ids`, shape `(B, num_completion, V)`. Only those
        positions are projected through the LM head when the model exposes its backbone.
        """
        kwargs = self.model_kwargs(model, attention_mask)
        keep = num_completion + 1 if self.shift_logits else num_completion
        hidden, head = _backbone_and_head(model)
        if hidden is not None:
            states = hidden(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state[:, -keep:]
            logits = head(states)
        else:
            logits = model(input_ids=input_ids, **kwargs).logits[:, -keep:]
        return logits[:, :-1] if self.shift_logits else logits

    def score_tokens(
        self,
        model,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Log-probabilities (float32) and entropies of `targets` at the sequence `positions` of batch `rows`, projecting
        only those positions through the LM head in tiles of `chunk_size` (vocabulary entries for a plain linear head,
        tokens otherwise), with float32 log-sum-exp statistics. The backward recomputes the tiles instead of keeping
        `[N, V]` logits.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: `(logps, entropies)`, each of shape `(N,)` for `N = len(rows)`.
        """
        if chunk_size is None:
            # Measured with benchmarks/coupled_estimator.py: small tiles win on CPU; TRL's default suits GPUs.
            chunk_size = 32768 if input_ids.device.type == "cuda" else 1024
        kwargs = self.model_kwargs(model, attention_mask)
        logit_pos = self.logit_positions(positions)
        hidden, head = _backbone_and_head(model)
        if hidden is not None:
            states = hidden(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state
            selected = states[rows, logit_pos]
            if type(head) is torch.nn.Linear:
                # TRL's chunked kernel: projects vocabulary tiles without keeping [N, V] logits for backward (it
                # recomputes them), with float32 log-sum-exp statistics.
                out = ChunkedLogProbFunction.apply(
                    selected, head.weight, head.bias, targets, 1.0, chunk_size, None, 1.0, ("log_probs", "entropy")
                )
                return out[0].float(), out[1].detach().float()
            logps, entropies = [], []
            for start in range(0, selected.size(0), chunk_size):
                logits = head(selected[start : start + chunk_size]).float()
                lp, ent = _logp_and_entropy(logits, targets[start : start + chunk_size])
                logps.append(lp)
                entropies.append(ent)
            if not logps:  # keep the graph connected when nothing is scored
                zero = states.sum() * 0.0
                return zero.float().reshape(0), zero.float().reshape(0)
            return torch.cat(logps), torch.cat(entropies)
        logits = model(input_ids=input_ids, **kwargs).logits
        return _logp_and_entropy(logits[rows, logit_pos].float(), targets)


def declared_diffusion_type(config) -> DiffusionType | None:
    """
    The masked-diffusion family a model config declares (its `diffusion_type`, else the family of its `model_type`
    for the public Dream/DiffuCoder and LLaDA checkpoints), or `None` for any other (autoregressive) model.

    Example:

    ```python
    >>> from transformers import Qwen2Config
    >>> from trl_ext.models.diffusion_lm import declared_diffusion_type
    >>> from trl_ext.models import DreamConfig
    >>> declared_diffusion_type(DreamConfig()), declared_diffusion_type(Qwen2Config())
    ('dream', None)
    ```
    """
    return getattr(config, "diffusion_type", None) or _KNOWN_MODEL_TYPES.get(str(config.model_type).lower())


# Tokens that end an assistant turn or a document in the chat formats of the supported checkpoints: Qwen's
# `<|im_end|>` (DiffuCoder/Dream Instruct), Llama-3's `<|eot_id|>` (LLaDA Instruct) and `<|endoftext|>` (every one).
TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>")


def diffusion_stop_token_ids(tokenizer=None, generation_config=None) -> list[int]:
    """
    The ids that end a rollout: the generation config's `eos_token_id` (one or a list), the tokenizer's EOS, and each
    of `<|im_end|>`, `<|eot_id|>` and `<|endoftext|>` that the tokenizer holds as a single special token. The
    published checkpoints declare only one of these (DiffuCoder's `eos_token_id` is `<|endoftext|>` while its chat
    template ends a turn with `<|im_end|>`; LLaDA Instruct's turn ends with `<|eot_id|>`), so a rollout that stopped
    only at the declared id would run past the end of the answer.

    Example:

    ```python
    >>> from trl_ext.models.diffusion_lm import diffusion_stop_token_ids
    >>> from trl_ext.testing import make_tokenizer
    >>> tokenizer = make_tokenizer()
    >>> tokenizer.convert_ids_to_tokens(diffusion_stop_token_ids(tokenizer))
    ['<|im_end|>', '<|endoftext|>']
    ```
    """
    ids: list[int] = []

    def add(value):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and int(item) not in ids:
                ids.append(int(item))

    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    if tokenizer is not None:
        add(tokenizer.eos_token_id)
        special = set(getattr(tokenizer, "all_special_tokens", [])) | {
            str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        }
        vocab = tokenizer.get_vocab()
        for token in TURN_END_TOKENS:
            if token in special and token in vocab:
                add(vocab[token])
    return ids


def _logp_and_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_probs = F.log_softmax(logits, dim=-1)
    logps = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():  # logged only: keep the [N, V] probabilities out of the autograd graph
        entropy = -(log_probs.exp() * log_probs).sum(-1)
    return logps, entropy


def _base_config(model):
    return _unwrap(model).config


def _compute_dtype(model) -> torch.dtype:
    for param in _unwrap(model).parameters():
        if param.dtype.is_floating_point:
            return param.dtype
    return torch.float32


def _backbone_and_head(model):
    """
    The backbone (returning `last_hidden_state`) and the LM head of `model`, or `(None, None)` when the model does not
    expose them (LLaDA's remote code computes its logits inside the backbone). Looked up on every call because PEFT
    and FSDP replace modules after construction.
    """
    inner = _unwrap(model)
    prefix = getattr(inner, "base_model_prefix", None)
    backbone = getattr(inner, prefix, None) if prefix else None
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if backbone is None or head is None or backbone is inner:
        return None, None
    if not is_native_model(inner) and str(inner.config.model_type).lower().startswith("llada"):
        return None, None
    return backbone, head


def add_diffusion_scoring(model, adapter: MaskedDiffusionAdapter) -> None:
    """
    Patch `model.forward` so that `model(input_ids=..., attention_mask=<2-D>, score_request=(rows, positions,
    targets))` returns `{"logps": ..., "entropies": ...}` from [`MaskedDiffusionAdapter.score_tokens`]; any other
    call runs the original forward.

    Scoring must go through `model(...)` rather than reaching into the backbone: a DDP wrapper only synchronises the
    gradients of a forward that passed through it. This is the same device TRL uses for its fused LM head.
    """
    inner = _unwrap(model)
    original_forward = inner.forward

    def forward(*args, score_request=None, **kwargs):
        if score_request is None:
            return original_forward(*args, **kwargs)
        rows, positions, targets = score_request
        logps, entropies = adapter.score_tokens(
            inner, kwargs["input_ids"], kwargs["attention_mask"], rows, positions, targets
        )
        return {"logps": logps, "entropies": entropies}

    inner.forward = forward
