"""
Tiny masked-diffusion checkpoints written in the published repositories' formats, for tests that must not depend on
our own `save_pretrained`.

Each writer builds a folder the way the Hub repositories of the real models are laid out, at a tiny size and with
random weights:

- **Dream / DiffuCoder** (`Dream-org/Dream-v0-*-7B`, `apple/DiffuCoder-7B-*`): transformers-4 `config.json` with
  `model_type="Dream"`, `architectures=["DreamModel"]` and an `auto_map` into remote code (deliberately *not*
  shipped: loading must never need it), Qwen2 weight names, a slow `DreamTokenizer` (`vocab.json`, `merges.txt`,
  `tokenizer_config.json` naming the remote class), a Qwen chat template, and `generation_config.json`.
- **LLaDA** (`GSAI-ML/LLaDA-8B-Instruct`): the published OLMo-style `config.json` (every field), its
  `generation_config.json`, a `PreTrainedTokenizerFast` with LLaDA's special tokens (`<|mdm_mask|>`, `<|eot_id|>`,
  ...), its chat template, and the OLMo weight names.

Weights are written as bfloat16 safetensors shards with a `model.safetensors.index.json`, from key names and shapes
spelt out here (not from our model classes), so a naming or shape mistake in the native classes fails to load.

Example:

```python
>>> import tempfile
>>> from transformers import AutoModelForCausalLM
>>> from trl_ext.testing_dllm import write_dream_checkpoint
>>> path = write_dream_checkpoint(tempfile.mkdtemp(), variant="diffucoder-instruct")
>>> type(AutoModelForCausalLM.from_pretrained(path)).__name__
'DreamModel'
```
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .testing import _byte_alphabet

# Qwen2.5's chat template as Dream/DiffuCoder Instruct ship it (system default, turns ended by <|im_end|>).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# LLaDA-8B-Instruct's chat template as published.
LLADA_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
)

DREAM_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|mask|>", "<|beginoftext|>", "<|dlm_pad|>"]
LLADA_SPECIAL_TOKENS = [
    "<|startoftext|>", "<|endoftext|>", "[CLS]", "[gMASK]", "<|mdm_mask|>", "<role>", "</role>",
    "<|arithmetic_start|>", "<|arithmetic_end|>", "<|number_start|>", "<|number_end|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>",
]  # fmt: skip

DREAM_VARIANTS = {
    # pad: the tokenizer's pad token; Dream pads with <|endoftext|>, DiffuCoder Instruct fills its canvas with
    # <|dlm_pad|> after the answer.
    "dream-instruct": {"pad": "<|endoftext|>", "chat": True},
    "dream-base": {"pad": "<|endoftext|>", "chat": False},
    "diffucoder-instruct": {"pad": "<|dlm_pad|>", "chat": True},
    "diffucoder-base": {"pad": "<|dlm_pad|>", "chat": False},
}


def _rand(shape, generator, std=0.05):
    return torch.randn(*shape, generator=generator) * std


def _norm(size, generator):
    return 1.0 + 0.1 * torch.randn(size, generator=generator)


def write_sharded_safetensors(state_dict: dict[str, torch.Tensor], path: str, num_shards: int = 2) -> None:
    """Write `state_dict` as `model-0000i-of-0000n.safetensors` shards and `model.safetensors.index.json`."""
    keys = sorted(state_dict)
    shards = [keys[i::num_shards] for i in range(num_shards)]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{num_shards:05d}.safetensors"
        tensors = {k: state_dict[k].contiguous() for k in shard}
        save_file(tensors, os.path.join(path, name), metadata={"format": "pt"})
        for key, tensor in tensors.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as handle:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, handle, indent=2)


def _dump(path, name, payload):
    with open(os.path.join(path, name), "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False)


def _added_tokens(tokens: list[str], start: int) -> dict:
    return {
        str(start + i): {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True,
        }
        for i, token in enumerate(tokens)
    }  # fmt: skip


def dream_state_dict(config: dict, seed: int = 0, dtype=torch.bfloat16) -> dict[str, torch.Tensor]:
    """Random weights under the Dream/DiffuCoder checkpoints' key names and shapes."""
    g = torch.Generator().manual_seed(seed)
    h, v, inter = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = h // heads
    sd = {"model.embed_tokens.weight": _rand((v, h), g, 0.5), "model.norm.weight": _norm(h, g)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = _rand((heads * head_dim, h), g, 0.2)
        sd[p + "self_attn.q_proj.bias"] = _rand((heads * head_dim,), g, 0.2)
        sd[p + "self_attn.k_proj.weight"] = _rand((kv * head_dim, h), g, 0.2)
        sd[p + "self_attn.k_proj.bias"] = _rand((kv * head_dim,), g, 0.2)
        sd[p + "self_attn.v_proj.weight"] = _rand((kv * head_dim, h), g, 0.2)
        sd[p + "self_attn.v_proj.bias"] = _rand((kv * head_dim,), g, 0.2)
        sd[p + "self_attn.o_proj.weight"] = _rand((h, heads * head_dim), g, 0.2)
        sd[p + "mlp.gate_proj.weight"] = _rand((inter, h), g, 0.2)
        sd[p + "mlp.up_proj.weight"] = _rand((inter, h), g, 0.2)
        sd[p + "mlp.down_proj.weight"] = _rand((h, inter), g, 0.2)
        sd[p + "input_layernorm.weight"] = _norm(h, g)
        sd[p + "post_attention_layernorm.weight"] = _norm(h, g)
    if not config.get("tie_word_embeddings"):
        sd["lm_head.weight"] = _rand((v, h), g, 0.5)
    return {k: t.to(dtype) for k, t in sd.items()}


def llada_state_dict(config: dict, seed: int = 0, dtype=torch.bfloat16) -> dict[str, torch.Tensor]:
    """Random weights under LLaDA-8B's key names (from its `model.safetensors.index.json`) and shapes."""
    g = torch.Generator().manual_seed(seed)
    d, rows = config["d_model"], config["embedding_size"] or config["vocab_size"]
    heads, kv = config["n_heads"], config["n_kv_heads"] or config["n_heads"]
    head_dim, hidden = d // heads, config["mlp_hidden_size"]
    sd = {"model.transformer.wte.weight": _rand((rows, d), g, 0.5), "model.transformer.ln_f.weight": _norm(d, g)}
    for i in range(config["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        sd[p + "attn_norm.weight"] = _norm(d, g)
        sd[p + "ff_norm.weight"] = _norm(d, g)
        sd[p + "q_proj.weight"] = _rand((heads * head_dim, d), g, 0.2)
        sd[p + "k_proj.weight"] = _rand((kv * head_dim, d), g, 0.2)
        sd[p + "v_proj.weight"] = _rand((kv * head_dim, d), g, 0.2)
        sd[p + "attn_out.weight"] = _rand((d, d), g, 0.2)
        sd[p + "ff_proj.weight"] = _rand((hidden, d), g, 0.2)
        sd[p + "up_proj.weight"] = _rand((hidden, d), g, 0.2)
        sd[p + "ff_out.weight"] = _rand((d, hidden), g, 0.2)
    if not config.get("weight_tying"):
        sd["model.transformer.ff_out.weight"] = _rand((rows, d), g, 0.5)
    return {k: t.to(dtype) for k, t in sd.items()}


def write_dream_checkpoint(
    path: str | os.PathLike,
    variant: str = "diffucoder-instruct",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_shards: int = 2,
    seed: int = 0,
    tie_word_embeddings: bool = False,
    generation_config: dict | None = None,
) -> str:
    """
    Write a tiny Dream-family checkpoint (`variant`: `"dream-instruct"`, `"dream-base"`, `"diffucoder-instruct"` or
    `"diffucoder-base"`) in the published layout and return its folder. `generation_config` adds fields to
    `generation_config.json` (e.g. Dream's `steps`, `alg`, `temperature`).
    """
    if variant not in DREAM_VARIANTS:
        raise ValueError(f"Unknown Dream variant {variant!r}; choose from {sorted(DREAM_VARIANTS)}.")
    spec = DREAM_VARIANTS[variant]
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    vocab = _byte_alphabet()
    ids = {token: len(vocab) + i for i, token in enumerate(DREAM_SPECIAL_TOKENS)}
    vocab_size = len(vocab) + len(DREAM_SPECIAL_TOKENS)
    config = {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": ids["<|beginoftext|>"],
        "eos_token_id": ids["<|endoftext|>"],
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": 2 * hidden_size,
        "mask_token_id": ids["<|mask|>"],
        "max_position_embeddings": 131072,
        "max_window_layers": 28,
        "model_type": "Dream",
        "num_attention_heads": 4,
        "num_hidden_layers": num_layers,
        "num_key_value_heads": 2,
        "pad_token_id": ids["<|endoftext|>"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": tie_word_embeddings,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }
    _dump(path, "config.json", config)
    _dump(
        path,
        "generation_config.json",
        {
            "_from_model_config": True,
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": config["eos_token_id"],
            "pad_token_id": config["pad_token_id"],
            "transformers_version": "4.46.2",
            **(generation_config or {}),
        },
    )
    write_sharded_safetensors(dream_state_dict(config, seed), path, num_shards)
    # The slow DreamTokenizer's files: a byte-level BPE vocabulary and merges (none at this size).
    _dump(path, "vocab.json", vocab)
    with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n")
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens(DREAM_SPECIAL_TOKENS, len(vocab)),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": "<|beginoftext|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "mask_token": "<|mask|>",
        "model_max_length": 131072,
        "pad_token": spec["pad"],
        "split_special_tokens": False,
        "tokenizer_class": "DreamTokenizer",
        "unk_token": None,
    }
    if spec["chat"]:
        tokenizer_config["chat_template"] = QWEN_CHAT_TEMPLATE
    _dump(path, "tokenizer_config.json", tokenizer_config)
    _dump(
        path,
        "special_tokens_map.json",
        {
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": "<|beginoftext|>",
            "eos_token": "<|endoftext|>",
            "mask_token": "<|mask|>",
            "pad_token": spec["pad"],
        },
    )
    return path


def write_llada_checkpoint(
    path: str | os.PathLike,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_shards: int = 2,
    seed: int = 0,
    weight_tying: bool = False,
    n_kv_heads: int = 4,
) -> str:
    """Write a tiny LLaDA-8B-Instruct-shaped checkpoint in the published layout and return its folder."""
    from .testing import LLADA_8B_CONFIG

    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    vocab = _byte_alphabet()
    ids = {token: len(vocab) + i for i, token in enumerate(LLADA_SPECIAL_TOKENS)}
    size = len(vocab) + len(LLADA_SPECIAL_TOKENS) + 2  # padded above the tokenizer, as LLaDA-8B's 126464 rows are
    config = {
        **LLADA_8B_CONFIG,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "d_model": hidden_size,
        "n_heads": 4,
        "n_kv_heads": n_kv_heads,
        "n_layers": num_layers,
        "mlp_hidden_size": 3 * hidden_size,
        "vocab_size": size,
        "embedding_size": size,
        "eos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "mask_token_id": ids["<|mdm_mask|>"],
        "weight_tying": weight_tying,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.3",
    }
    _dump(path, "config.json", config)
    _dump(
        path,
        "generation_config.json",
        {
            "_from_model_config": True,
            "bos_token_id": ids["<|startoftext|>"],
            "eos_token_id": ids["<|endoftext|>"],
            "transformers_version": "4.46.2",
        },
    )
    write_sharded_safetensors(llada_state_dict(config, seed), path, num_shards)
    backend = Tokenizer(models.BPE(vocab=dict(vocab), merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLADA_SPECIAL_TOKENS])
    backend.save(os.path.join(path, "tokenizer.json"))
    extra = ["<role>", "</role>", "<|arithmetic_start|>", "<|arithmetic_end|>", "<|number_start|>", "<|number_end|>"]
    _dump(
        path,
        "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_eos_token": False,
            "added_tokens_decoder": _added_tokens(LLADA_SPECIAL_TOKENS, len(vocab)),
            "additional_special_tokens": extra,
            "bos_token": "<|startoftext|>",
            "chat_template": LLADA_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "cls_token": "[CLS]",
            "eos_token": "<|endoftext|>",
            "fast_tokenizer": True,
            "gmask_token": "[gMASK]",
            "merges_file": None,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 1000000000000000019884624838656,
            "pad_token": "<|endoftext|>",
            "tokenizer_class": "PreTrainedTokenizerFast",
            "trust_remote_code": True,
            "vocab_file": None,
        },
    )
    _dump(
        path,
        "special_tokens_map.json",
        {
            "additional_special_tokens": extra,
            "bos_token": "<|startoftext|>",
            "cls_token": "[CLS]",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
        },
    )
    return path


__all__ = [
    "dream_state_dict",
    "llada_state_dict",
    "write_dream_checkpoint",
    "write_llada_checkpoint",
    "write_sharded_safetensors",
]
