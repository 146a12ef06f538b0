# /// script
# dependencies = [
#     "trl_ext",
#     "trl>=1.16,<1.17",
# ]
# ///
"""
Coupled-GRPO for masked-diffusion LMs (DiffuCoder, https://huggingface.co/papers/2506.20639).

The paper recipe (DiffuCoder-7B-Instruct on hard AceCode prompts, 8 GPUs, ZeRO-2):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/coupled_grpo.py \
    --config recipes/configs/coupled_grpo_diffucoder.yaml
```

A tiny offline run (random-weight Dream-style model, bundled prompts, about a minute on a laptop CPU):

```bash
accelerate launch --cpu recipes/coupled_grpo.py --config recipes/configs/coupled_grpo_tiny.yaml
torchrun --nproc_per_node 2 recipes/coupled_grpo.py --config recipes/configs/coupled_grpo_tiny.yaml
```

Dream, DiffuCoder and LLaDA checkpoints (Hub ids or local folders) load through trl_ext's native classes, without
`trust_remote_code`. `--model_name_or_path tiny-random:dream` (or `tiny-random:llada`) builds a tiny random-weight model with
`trl_ext.testing` instead of loading one; `--dataset_name` takes a Hub id, a folder written by a `trl_ext.data` builder (`save_to_disk`), a local
`.json`/`.jsonl`/`.csv`/`.parquet` file, or
`trl_ext/code_problems` (the bundled HumanEval problems).

Publishing: `--push_to_hub --hub_model_id <user>/<name>` uploads the model, its tokenizer, the model card (`README.md`)
and `training_config.yaml` (the arguments of the run, which this recipe accepts again with `--config`); the card's
quickstart loads the repository as pushed. `HF_ENDPOINT` points the push at another Hub.
"""

import os
import string
from dataclasses import dataclass, field

import torch
from datasets import DatasetDict
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.data import is_local_dataset, load_prompt_dataset
from trl_ext.model_card import save_training_config
from trl_ext.models import load_diffusion_tokenizer
from trl_ext.rewards.naming import named_reward
from trl_ext.testing import (
    make_tiny_dream_lm,
    make_tiny_llada_lm,
    make_tokenizer,
    save_tiny_model,
    target_fraction_reward,
)

# `--dataset_name trl_ext/code_problems`: the 20 bundled HumanEval problems, formatted by `load_code_problems` (a chat
# prompt asking for one fenced python block, and `test_cases`).
BUNDLED_CODE_PROBLEMS = "trl_ext/code_problems"
RECIPE = "recipes/coupled_grpo.py"

REWARD_FUNCS = {"lowercase_fraction": target_fraction_reward(string.ascii_lowercase)}
try:  # the code-execution rewards ship with trl_ext.rewards
    from trl_ext.rewards import async_code_pass_rate_reward, code_format_reward

    # The async pass-rate reward runs in TRL's event loop, concurrently with the other rewards.
    REWARD_FUNCS.update(code_format=code_format_reward, code_pass_rate=async_code_pass_rate_reward)
except ImportError:
    pass


@dataclass
class CoupledGRPOScriptArguments(ScriptArguments):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["code_pass_rate", "code_format"],
        metadata={"help": f"Reward functions, weighted by `reward_weights`. Available: {sorted(REWARD_FUNCS)}."},
    )


def build_tiny_model(name: str, output_dir: str, accelerator_state) -> str:
    """Save a tiny random model once (main process first) and return its folder."""
    family = name.split(":", 1)[1]
    builders = {"dream": make_tiny_dream_lm, "llada": make_tiny_llada_lm}
    if family not in builders:
        raise ValueError(f"Unknown tiny model {name!r}: use 'tiny-random:dream' or 'tiny-random:llada'.")
    # A leading "_" keeps it out of `push_to_hub` (TRL/transformers ignore `_*` when uploading the output folder).
    path = os.path.join(output_dir, "_tiny_base_model")
    with accelerator_state.main_process_first():
        if not os.path.exists(os.path.join(path, "config.json")):
            tokenizer = make_tokenizer()
            save_tiny_model(builders[family](tokenizer, hidden_size=64), tokenizer, path)
    return path


def main(script_args, training_args, model_args):
    from accelerate import PartialState

    model_name = model_args.model_name_or_path
    if model_name.startswith("tiny-random:"):
        model_name = build_tiny_model(model_name, training_args.output_dir, PartialState())

    unknown = [name for name in script_args.reward_funcs if name not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"Unknown `reward_funcs` {unknown}; available: {sorted(REWARD_FUNCS)}.")
    # Logged under the YAML's names (`rewards/code_pass_rate/mean`, ...), not the functions' own.
    reward_funcs = [named_reward(REWARD_FUNCS[name], name) for name in script_args.reward_funcs]

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": dtype,
    }
    # Dream/DiffuCoder ship a remote-code `DreamTokenizer` (Qwen2's BPE); it loads natively, like the model.
    tokenizer = load_diffusion_tokenizer(
        model_name,
        trust_remote_code=training_args.trust_remote_code,
        revision=model_args.model_revision,
        padding_side="left",
    )

    name = script_args.dataset_name
    if name == BUNDLED_CODE_PROBLEMS:
        from trl_ext.data import load_code_problems

        dataset = DatasetDict({script_args.dataset_train_split: load_code_problems()})
    else:  # a builder's save_to_disk folder, a .json/.jsonl/.csv/.parquet file, or a Hub id
        dataset = load_prompt_dataset(name, script_args.dataset_config)

    trainer = CoupledGRPOTrainer(
        model=model_name,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        eval_dataset=dataset[script_args.dataset_test_split] if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:  # pushed with the model; the card shows it
        save_training_config(training_args.output_dir, script_args, training_args, model_args, recipe=RECIPE)
    dataset_name = None if is_local_dataset(name) else name
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    if trainer.accelerator.is_main_process:
        print(f"Model, tokenizer and model card saved to {training_args.output_dir}")



def make_parser() -> TrlParser:
    """The recipe's argument parser (`--config` YAML + command line); the tests parse every shipped YAML with it."""
    return TrlParser((CoupledGRPOScriptArguments, CoupledGRPOConfig, ModelConfig))

if __name__ == "__main__":
    parser = make_parser()
    main(*parser.parse_args_and_config())
