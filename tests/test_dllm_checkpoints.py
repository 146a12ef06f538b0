"""
The published Dream/DiffuCoder/LLaDA checkpoints, as their repositories lay them out (config.json fields with an
`auto_map` into remote code that is *not* shipped, Qwen2/OLMo weight names, bf16 shards with an index, the slow
DreamTokenizer or LLaDA's fast tokenizer), load through the native classes and train with CoupledGRPOTrainer.
"""

import json
import logging
import os
import string

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.generation import MaskedDiffusionSampler
from trl_ext.models import (
    DreamConfig,
    DreamModel,
    LLaDAConfig,
    LLaDAModelLM,
    MaskedDiffusionAdapter,
    diffusion_stop_token_ids,
    load_diffusion_tokenizer,
)
from trl_ext.models._native import check_native_model
from trl_ext.testing import target_fraction_reward
from trl_ext.testing_dllm import write_dream_checkpoint, write_llada_checkpoint

FAMILIES = {
    "dream-instruct": (lambda p, **kw: write_dream_checkpoint(p, "dream-instruct", **kw), DreamConfig, DreamModel),
    "diffucoder-instruct": (
        lambda p, **kw: write_dream_checkpoint(p, "diffucoder-instruct", **kw), DreamConfig, DreamModel,
    ),
    "llada-instruct": (write_llada_checkpoint, LLaDAConfig, LLaDAModelLM),
}  # fmt: skip


def _weights(path):
    with open(os.path.join(path, "model.safetensors.index.json")) as handle:
        shards = set(json.load(handle)["weight_map"].values())
    weights = {}
    for shard in shards:
        weights.update(load_file(os.path.join(path, shard)))
    return weights


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_auto_classes_build_the_native_class_with_every_weight(tmp_path, family):
    write, config_class, model_class = FAMILIES[family]
    path = write(tmp_path / family)
    assert type(AutoConfig.from_pretrained(path)) is config_class
    for auto in (AutoModel, AutoModelForCausalLM):
        model = auto.from_pretrained(path, dtype=torch.float32)
        assert type(model) is model_class
    state = model.state_dict()
    written = _weights(path)
    assert set(written) <= set(state)
    for key, tensor in written.items():
        torch.testing.assert_close(state[key], tensor.float(), rtol=0, atol=0, msg=key)
    # Rotary frequencies are computed from the config, never read from uninitialised memory.
    rotary = model.model.rotary_emb
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    theta = model.config.rope_theta if family.startswith("llada") else model.config.rope_parameters["rope_theta"]
    expected = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    torch.testing.assert_close(rotary.inv_freq.float(), expected)
    # A saved copy names no remote code.
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert "auto_map" not in saved and saved["model_type"] == AutoConfig.from_pretrained(path).model_type


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tokenizer_mask_and_stop_tokens(tmp_path, family):
    path = FAMILIES[family][0](tmp_path / family)
    tokenizer = load_diffusion_tokenizer(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    expected_mask = "<|mdm_mask|>" if family.startswith("llada") else "<|mask|>"
    assert tokenizer.convert_ids_to_tokens(adapter.mask_token_id) == expected_mask
    stops = tokenizer.convert_ids_to_tokens(diffusion_stop_token_ids(tokenizer, model.generation_config))
    turn_end = "<|eot_id|>" if family.startswith("llada") else "<|im_end|>"
    assert set(stops) == {"<|endoftext|>", turn_end}
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("assistant\n" if turn_end == "<|im_end|>" else "assistant<|end_header_id|>\n\n")
    # Byte-level round trip through the checkpoint's tokenizer files.
    ids = tokenizer("déf f(x):\n    return x", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == "déf f(x):\n    return x"


def test_strict_loading_names_missing_unexpected_and_misshaped_weights(tmp_path):
    path = write_dream_checkpoint(tmp_path / "dream", num_shards=1)
    shard = os.path.join(path, "model-00001-of-00001.safetensors")
    weights = load_file(shard)
    index_path = os.path.join(path, "model.safetensors.index.json")
    index = json.loads(open(index_path).read())

    def rewrite(new_weights):
        save_file(new_weights, shard, metadata={"format": "pt"})
        index["weight_map"] = {k: "model-00001-of-00001.safetensors" for k in new_weights}
        open(index_path, "w").write(json.dumps(index))

    missing = dict(weights)
    del missing["model.layers.1.mlp.up_proj.weight"]
    rewrite(missing)
    with pytest.raises(ValueError, match=r"missing keys: model\.layers\.1\.mlp\.up_proj\.weight"):
        AutoModelForCausalLM.from_pretrained(path)
    rewrite({**weights, "model.layers.0.self_attn.extra.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"unexpected keys: model\.layers\.0\.self_attn\.extra\.weight"):
        AutoModelForCausalLM.from_pretrained(path)
    misshaped = dict(weights)
    misshaped["model.norm.weight"] = torch.ones(7, dtype=torch.bfloat16)
    rewrite(misshaped)
    with pytest.raises((ValueError, RuntimeError), match=r"model\.norm\.weight"):
        AutoModelForCausalLM.from_pretrained(path)


def test_unsupported_llada_settings_fail_naming_the_field(tmp_path):
    path = write_llada_checkpoint(tmp_path / "llada")
    config = json.loads(open(os.path.join(path, "config.json")).read())
    config["alibi"] = True
    open(os.path.join(path, "config.json"), "w").write(json.dumps(config))
    with pytest.raises(ValueError, match=r"LLaDAConfig\.alibi=True is not supported"):
        AutoModelForCausalLM.from_pretrained(path)


def test_remote_code_instances_are_refused_with_the_fix():
    class DreamModel(torch.nn.Module):  # stands in for transformers_modules.<repo>.modeling_dream.DreamModel
        config = DreamConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                             num_attention_heads=2)  # fmt: skip

    DreamModel.__module__ = "transformers_modules.Dream_hyphen_org.modeling_dream"
    with pytest.raises(ValueError, match="without `trust_remote_code`"):
        check_native_model(DreamModel())


REWARD = target_fraction_reward(string.printable[:62])  # varied enough that a random model's groups differ


def _dataset(n=16):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": "write something"}]] * n})


def _args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"), max_completion_length=8, num_generations=4, per_device_train_batch_size=8,
        max_steps=2, bf16=False, report_to="none", learning_rate=1e-2, logging_steps=1, save_strategy="no",
        disable_tqdm=True, seed=0, beta=0.01, model_init_kwargs={"dtype": "float32"},
    )  # fmt: skip
    kwargs.update(overrides)
    return CoupledGRPOConfig(**kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("sync_ref_model", [False, True])
def test_trainer_from_a_checkpoint_folder_trains_saves_and_reloads(tmp_path, caplog, family, sync_ref_model):
    path = FAMILIES[family][0](tmp_path / family)
    tokenizer = load_diffusion_tokenizer(path, padding_side="left")
    args = _args(tmp_path, sync_ref_model=sync_ref_model, ref_model_sync_steps=1, trust_remote_code=True)
    with caplog.at_level(logging.WARNING, logger="trl_ext.models._native"):
        trainer = CoupledGRPOTrainer(path, REWARD, args=args, train_dataset=_dataset(), processing_class=tokenizer)
    # `trust_remote_code=True` was asked for: the native class is used (the remote files do not even exist) and the
    # log says so.
    assert type(trainer.model) is FAMILIES[family][2] and type(trainer.ref_model) is FAMILIES[family][2]
    assert sum("native class" in r.getMessage() for r in caplog.records) == 1
    stops = set(tokenizer.convert_ids_to_tokens(trainer.eos_token_ids))
    assert {"<|endoftext|>", "<|eot_id|>" if family.startswith("llada") else "<|im_end|>"} <= stops
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    after = trainer.model.state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in after.items())
    # With sync, TRL mixed the trained policy into the reference model (0.6 policy + 0.4 reference).
    ref = trainer.ref_model.state_dict()
    moved = max((ref[k] - before[k]).abs().max().item() for k in before)
    assert (moved > 1e-4) == sync_ref_model
    trainer.save_model(str(tmp_path / "trained"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "trained", dtype=torch.float32).eval()
    ids = tokenizer(["hello there", "x"], return_tensors="pt", padding=True)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(input_ids=ids.input_ids, attention_mask=ids.attention_mask).logits
        actual = reloaded(input_ids=ids.input_ids, attention_mask=ids.attention_mask).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    # The saved generation config carries the sampler the model was trained with.
    sampler = MaskedDiffusionSampler.from_model(reloaded, tokenizer)
    assert (sampler.steps, sampler.alg, sampler.temperature, sampler.top_p) == (8, "entropy", 1.2, 0.95)
    assert set(sampler.eos_token_ids) == set(trainer.eos_token_ids)


def test_checkpoint_generation_config_sets_the_sampling_defaults(tmp_path):
    path = write_dream_checkpoint(
        tmp_path / "dream",
        generation_config={"steps": 4, "alg": "maskgit_plus", "temperature": 0.4, "top_p": 0.9, "alg_temp": 0.0},
    )
    tokenizer = load_diffusion_tokenizer(path, padding_side="left")
    trainer = CoupledGRPOTrainer(
        path, REWARD, args=_args(tmp_path, beta=0.0), train_dataset=_dataset(),
        processing_class=tokenizer,
    )  # fmt: skip
    s = trainer.sampler
    assert (s.steps, s.alg, s.temperature, s.top_p, s.alg_temp) == (4, "maskgit_plus", 0.4, 0.9, 0.0)
    # Explicit settings win over the checkpoint's.
    trainer = CoupledGRPOTrainer(
        path, REWARD, args=_args(tmp_path, beta=0.0, temperature=1.0, diffusion_alg="entropy"),
        train_dataset=_dataset(), processing_class=tokenizer,
    )  # fmt: skip
    s = trainer.sampler
    assert (s.steps, s.alg, s.temperature, s.top_p) == (4, "entropy", 1.0, 0.9)


@pytest.mark.parametrize("family", ["diffucoder-instruct", "llada-instruct"])
def test_save_pretrained_round_trip_and_bf16(tmp_path, family):
    path = FAMILIES[family][0](tmp_path / family)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    model.save_pretrained(tmp_path / "copy")
    copy = AutoModelForCausalLM.from_pretrained(tmp_path / "copy", dtype=torch.float32).eval()
    ids = torch.tensor([[5, 6, 7, model.config.mask_token_id]])
    with torch.no_grad():
        torch.testing.assert_close(copy(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
        bf16 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
        logits = bf16(input_ids=ids).logits
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), model(input_ids=ids).logits, atol=0.15, rtol=0.05)


@pytest.mark.parametrize("writer", ["dream", "llada"])
def test_tied_embeddings_round_trip(tmp_path, writer):
    if writer == "dream":
        path = write_dream_checkpoint(tmp_path / "m", tie_word_embeddings=True)
    else:
        path = write_llada_checkpoint(tmp_path / "m", weight_tying=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    head = model.get_output_embeddings().weight
    assert head.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    model.save_pretrained(tmp_path / "copy")
    copy = AutoModelForCausalLM.from_pretrained(tmp_path / "copy", dtype=torch.float32).eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(copy(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["diffucoder-instruct", "llada-instruct"])
def test_gradient_checkpointing_gives_the_same_gradients(tmp_path, family):
    path = FAMILIES[family][0](tmp_path / family)
    grads = []
    for checkpointing in (False, True):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        ids = torch.tensor([[5, 6, 7, 8, model.config.mask_token_id]])
        model(input_ids=ids).logits.logsumexp(-1).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)


def test_llada_lora_targets_from_the_readme(tmp_path):
    from peft import LoraConfig, get_peft_model

    path = write_llada_checkpoint(tmp_path / "llada")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    target = r".*blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)"
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=target))
    wrapped = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert len(wrapped) == 7 * model.config.n_layers
    assert not any("transformer.ff_out" in n and "blocks" not in n for n in wrapped)  # the output layer is left alone


@pytest.mark.slow
def test_paper_recipe_runs_as_written_on_a_diffucoder_checkpoint(tmp_path):
    """The paper YAML, unchanged but for what a 2-core CPU and an offline machine need (model and dataset location,
    sizes, bf16 mixed precision, wandb): no `trust_remote_code`, the DiffuCoder layout loads natively."""
    import subprocess
    import sys

    path = write_dream_checkpoint(tmp_path / "DiffuCoder-7B-Instruct", "diffucoder-instruct")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [
        sys.executable, "recipes/coupled_grpo.py", "--config", "recipes/configs/coupled_grpo_diffucoder.yaml",
        "--model_name_or_path", path, "--dataset_name", "trl_ext/code_problems", "--output_dir", str(tmp_path / "out"),
        "--bf16", "false", "--report_to", "none", "--max_steps", "1", "--num_generations", "2",
        "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--max_completion_length", "8",
        "--diffusion_steps", "8", "--save_strategy", "no",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "Dream" and "auto_map" not in config
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["alg"] == "entropy" and generation["temperature"] == 1.2 and generation["steps"] == 8
