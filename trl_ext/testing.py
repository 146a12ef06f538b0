"""
Tiny, seeded, random-weight models and a local tokenizer for tests, demos and CI.

Nothing here touches the Hugging Face Hub: the tokenizer is a byte-level BPE without merges built in memory (every
UTF-8 string round-trips), and the models are built from configs. [`save_tiny_model`] writes a model and its
tokenizer to a folder so that code paths which reload by name (TRL's reference model, `from_pretrained`) work.

Example:

```python
>>> from trl_ext.testing import make_tokenizer, make_tiny_dream_lm
>>> tokenizer = make_tokenizer()
>>> model = make_tiny_dream_lm(tokenizer)
>>> model.config.diffusion_type, model.config.mask_token_id == tokenizer.mask_token_id
('dream', True)
```
"""

from __future__ import annotations

import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
MASK_TOKEN = "<|mask|>"

# A Qwen-style chat template, so tiny models see prompts formatted like DiffuCoder/Dream's.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_alphabet() -> dict[str, int]:
    # GPT-2's reversible byte -> printable-character map: printable bytes map to themselves, the others are shifted
    # above 255, so a byte-level BPE can hold every byte as one token.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = {}
    shift = 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + shift)
            shift += 1
    return {chars[b]: b for b in range(256)}


def make_tokenizer(with_mask_token: bool = True) -> PreTrainedTokenizerFast:
    """
    Build a byte-level tokenizer (256 byte tokens + special tokens) with a Qwen-style chat template.

    Args:
        with_mask_token (`bool`, *optional*, defaults to `True`):
            Whether to add the `<|mask|>` token that masked-diffusion models need.

    Returns:
        [`~transformers.PreTrainedTokenizerFast`]: left-padding tokenizer; eos is `<|im_end|>`, pad is
        `<|endoftext|>`.
    """
    backend = Tokenizer(models.BPE(vocab=_byte_alphabet(), merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    specials = [PAD_TOKEN, IM_START, EOS_TOKEN] + ([MASK_TOKEN] if with_mask_token else [])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=specials,
        padding_side="left",
        truncation_side="left",
    )
    if with_mask_token:
        tokenizer.mask_token = MASK_TOKEN
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _tiny_config(config_class, tokenizer, hidden_size: int, num_layers: int, num_kv_heads: int):
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def _finish(model: PreTrainedModel, tokenizer) -> PreTrainedModel:
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model.eval()


def _require_mask_token(tokenizer) -> int:
    if tokenizer.mask_token_id is None:
        raise ValueError("`tokenizer` has no mask token: build it with `make_tokenizer(with_mask_token=True)`.")
    return tokenizer.mask_token_id


def make_tiny_causal_lm(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> Qwen2ForCausalLM:
    """A tiny autoregressive Qwen2 (an ordinary causal LM, *not* a diffusion LM)."""
    torch.manual_seed(seed)
    return _finish(Qwen2ForCausalLM(_tiny_config(Qwen2Config, tokenizer, hidden_size, num_layers, 2)), tokenizer)


def make_tiny_dream_lm(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """
    A tiny Dream/DiffuCoder-family masked-diffusion LM: the native [`~trl_ext.models.dream.DreamModel`] (a
    bidirectional Qwen2 whose logits are read shifted by one), random weights, the tokenizer's mask token.
    """
    from .models.dream import DreamConfig, DreamModel

    torch.manual_seed(seed)
    config = _tiny_config(DreamConfig, tokenizer, hidden_size, num_layers, 2)
    config.mask_token_id = _require_mask_token(tokenizer)
    return _finish(DreamModel(config), tokenizer)


def make_tiny_llada_lm(tokenizer, hidden_size: int = 32, num_layers: int = 2, seed: int = 0):
    """
    A tiny LLaDA-family masked-diffusion LM: the native [`~trl_ext.models.llada.LLaDAModelLM`] (OLMo-style weight
    names, bidirectional, logits not shifted), configured like LLaDA-8B's `config.json` at a tiny size.
    """
    from .models.llada import LLaDAConfig, LLaDAModelLM

    torch.manual_seed(seed)
    config = LLaDAConfig(**tiny_llada_config_fields(tokenizer, hidden_size, num_layers))
    return _finish(LLaDAModelLM(config), tokenizer)


def tiny_llada_config_fields(tokenizer, hidden_size: int = 32, num_layers: int = 2) -> dict:
    """LLaDA-8B's `config.json` fields (as published) at a tiny size, for `tokenizer`'s vocabulary."""
    return {
        **LLADA_8B_CONFIG,
        "d_model": hidden_size,
        "n_heads": 4,
        "n_kv_heads": 4,
        "n_layers": num_layers,
        "mlp_hidden_size": 2 * hidden_size,
        "max_sequence_length": 1024,
        "vocab_size": len(tokenizer),
        "embedding_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": _require_mask_token(tokenizer),
    }


# LLaDA-8B-Instruct's config.json as published (GSAI-ML/LLaDA-8B-Instruct), less `auto_map`.
LLADA_8B_CONFIG = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "d_model": 4096,
    "embedding_dropout": 0.0,
    "embedding_size": 126464,
    "eos_token_id": 126081,
    "flash_attention": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mask_token_id": 126336,
    "max_sequence_length": 4096,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "model_type": "llada",
    "multi_query_attention": None,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "pad_token_id": 126081,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "use_cache": False,
    "vocab_size": 126464,
    "weight_tying": False,
}


def save_tiny_model(model: PreTrainedModel, tokenizer, path: str | os.PathLike) -> str:
    """Save `model` and `tokenizer` to `path` (so loaders that take a name or folder work) and return the path."""
    path = os.fspath(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_chat_model(output_dir: str | os.PathLike, accelerator_state, hidden_size: int = 64) -> str:
    """
    Save the tiny random causal LM the AesCoder recipes use for `tiny-random:causal` (once, main process first) in
    `<output_dir>/_tiny_base_model` and return that folder. The leading "_" keeps it out of `push_to_hub`.
    """
    path = os.path.join(os.fspath(output_dir), "_tiny_base_model")
    with accelerator_state.main_process_first():
        if not os.path.exists(os.path.join(path, "config.json")):
            tokenizer = make_tokenizer(with_mask_token=False)
            save_tiny_model(make_tiny_causal_lm(tokenizer, hidden_size=hidden_size), tokenizer, path)
    return path


def target_fraction_reward(targets: str = "a"):
    """
    A simple learnable reward for tests and demos: the fraction of the completion's characters that are in `targets`.
    Returns a TRL reward function (`prompts`, `completions`, `**kwargs`) -> `list[float]`.
    """
    allowed = set(targets)

    def reward(prompts, completions, **kwargs) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [sum(ch in allowed for ch in text) / max(len(text), 1) for text in texts]

    reward.__name__ = "fraction_in_target" if len(targets) > 1 else f"fraction_of_{targets}"
    return reward
