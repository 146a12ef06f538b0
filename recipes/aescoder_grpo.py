# /// script
# dependencies = [
#     "trl_ext[web]",
#     "trl>=1.16,<1.17",
# ]
# ///
"""
GRPO with agentic aesthetic rewards for code (AesCoder, https://huggingface.co/papers/2510.23272).

Each completion's HTML is linted, rendered once in headless Chromium (Debian's `chromium`, driven by Playwright),
scored by a static aesthetics judge, and tried by a GUI agent; the reward is 0.1 * execution + 0.8 * static + 0.1 *
interactive.

The paper recipe (Qwen3-4B-Instruct-2507 after the SFT stage; a VLM judge served by vLLM on another node):

```bash
vllm serve Qwen/Qwen2.5-VL-72B-Instruct --port 8000 &       # on the judge node
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/aescoder_grpo.py \
    --config recipes/configs/aescoder_grpo_paper.yaml --judge_base_url http://judge-node:8000/v1
```

A tiny offline run (random-weight model, bundled prompts, the model-free design judge; a couple of minutes on CPU):

```bash
accelerate launch --cpu recipes/aescoder_grpo.py --config recipes/configs/aescoder_grpo_tiny.yaml
```

`--model_name_or_path tiny-random:causal` builds a tiny random-weight model with `trl_ext.testing`;
`--dataset_name` takes a Hub id, a `trl_ext.data.websight` (save_to_disk) folder, a local `.json`/`.jsonl`/`.csv`/
`.parquet` file with a `prompt` column, `trl_ext/web_design_prompts`
(the 36 bundled prompts), or `trl_ext/aescode_sample` (the requests of the 24 webpage rows the bundled SFT data answers:
`make demo` trains the tiny SFT model further on them). Local copies of CDN libraries are served to the pages once installed with
`python -m trl_ext.web.vendor install`.

Publishing: `--push_to_hub --hub_model_id <user>/<name>` uploads the model, its tokenizer, the model card (`README.md`)
and `training_config.yaml` (the arguments of the run, which this recipe accepts again with `--config`); the card's
quickstart loads the repository as pushed. `HF_ENDPOINT` points the push at another Hub.
"""

import os
from dataclasses import dataclass, field

import torch
from datasets import DatasetDict
from transformers import AutoTokenizer
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from trl_ext import AesCoderGRPOConfig, AesCoderGRPOTrainer
from trl_ext.data import is_local_dataset, load_prompt_dataset
from trl_ext.model_card import save_training_config
from trl_ext.testing import save_tiny_chat_model

BUNDLED_PROMPTS = "trl_ext/web_design_prompts"
AESCODE_SAMPLE = "trl_ext/aescode_sample"
RECIPE = "recipes/aescoder_grpo.py"


@dataclass
class AesCoderScriptArguments(ScriptArguments):
    dataset_name: str | None = field(
        default=BUNDLED_PROMPTS,
        metadata={
            "help": "Hub id, local .json/.jsonl file (a `prompt` column), trl_ext/web_design_prompts or "
            "trl_ext/aescode_sample."
        },
    )
    categories: list[str] | None = field(
        default=None, metadata={"help": "With the bundled prompts: keep only these categories."}
    )


def main(script_args, training_args, model_args):
    from accelerate import PartialState

    model_name = model_args.model_name_or_path
    if model_name == "tiny-random:causal":
        model_name = save_tiny_chat_model(training_args.output_dir, PartialState())
    elif model_name.startswith("tiny-random:"):
        raise ValueError(f"Unknown tiny model {model_name!r}: use 'tiny-random:causal'.")

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": dtype,
    }
    tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=training_args.trust_remote_code)

    name = script_args.dataset_name
    if name == BUNDLED_PROMPTS:
        from trl_ext.data import load_web_design_prompts

        dataset = DatasetDict({script_args.dataset_train_split: load_web_design_prompts(script_args.categories)})
    elif name == AESCODE_SAMPLE:  # the requests of the 24 webpage rows of the bundled SFT data (`make demo`)
        from trl_ext.data.aescode import load_aescode

        rows = load_aescode(
            name, subset="web", categories=script_args.categories, conversation_format="prompt_completion"
        )
        dataset = DatasetDict({script_args.dataset_train_split: rows.select_columns(["prompt"])})
    else:  # a builder's save_to_disk folder (e.g. trl_ext.data.websight), a data file, or a Hub id
        dataset = load_prompt_dataset(name, script_args.dataset_config)

    trainer = AesCoderGRPOTrainer(
        model=model_name,
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
        # The log history (reward per term per step), which recipes/aescoder_demo_report.py reads.
        trainer.state.save_to_json(os.path.join(training_args.output_dir, "trainer_state.json"))
    dataset_name = None if is_local_dataset(name) else name
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    if trainer.accelerator.is_main_process:
        counters = dict(trainer.aesthetic_reward.counters)
        print(f"Model, tokenizer and model card saved to {training_args.output_dir}")
        print(f"Best/worst pages (screenshot, HTML, scores): {os.path.join(training_args.output_dir, 'screenshots')}")
        print(f"Failures by kind over the run: {counters or 'none'}")



def make_parser() -> TrlParser:
    """The recipe's argument parser (`--config` YAML + command line); the tests parse every shipped YAML with it."""
    return TrlParser((AesCoderScriptArguments, AesCoderGRPOConfig, ModelConfig))

if __name__ == "__main__":
    parser = make_parser()
    main(*parser.parse_args_and_config())
