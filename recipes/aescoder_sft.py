# /// script
# dependencies = [
#     "trl_ext",
#     "trl>=1.16,<1.17",
# ]
# ///
"""
Supervised fine-tuning on AesCode-358K: the first stage of AesCoder (https://huggingface.co/papers/2510.23272), before
GRPO with agentic aesthetic rewards (`recipes/aescoder_grpo.py`).

The paper recipe (Qwen3-4B-Instruct-2507, 3 epochs, lr 1e-5, cosine with 10% warmup, batch 128, 8K tokens; 8 GPUs):

```bash
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/aescoder_sft.py \
    --config recipes/configs/aescoder_sft_paper.yaml
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/aescoder_grpo.py \
    --config recipes/configs/aescoder_grpo_paper.yaml --model_name_or_path outputs/aescoder-sft-4b
```

The whole pipeline offline on a CPU (a tiny random-weight model, the 40 bundled AesCode rows, then two GRPO steps
rendered in Chromium; a few minutes):

```bash
accelerate launch --cpu recipes/aescoder_sft.py --config recipes/configs/aescoder_sft_tiny.yaml
accelerate launch --cpu recipes/aescoder_grpo.py --config recipes/configs/aescoder_grpo_tiny.yaml \
    --model_name_or_path outputs/aescoder-sft-tiny --max_steps 2
```

`--dataset_name` takes a Hub id, a local `.parquet` / `.jsonl` file or folder (or one written by `save_to_disk`) in
the format of AesCode-358K, or `trl_ext/aescode_sample` (the 40 bundled rows); `--dataset_subset web|plot|both` and
`--categories website 3d game ui_component data_visualization plot` select rows, `--max_samples` caps them (a random
draw with `--seed`). `--model_name_or_path tiny-random:causal` builds a tiny random-weight model with
`trl_ext.testing`. LoRA: `--use_peft --lora_r 64 --lora_alpha 128` (the output folder then holds the adapter).
"""

import os
from dataclasses import dataclass, field

import torch
from transformers import AutoTokenizer
from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser, get_peft_config

from trl_ext.data.aescode import AESCODE_HUB_ID, AESCODE_SAMPLE, FORMATS, SUBSETS, load_aescode
from trl_ext.model_card import save_training_config
from trl_ext.testing import save_tiny_chat_model
from trl_ext.trainers.aescoder_sft_trainer import AesCoderSFTTrainer

RECIPE = "recipes/aescoder_sft.py"


@dataclass
class AesCodeScriptArguments(ScriptArguments):
    dataset_name: str | None = field(
        default=AESCODE_HUB_ID,
        metadata={"help": "Hub id, local .parquet/.jsonl file or folder, or trl_ext/aescode_sample (40 rows)."},
    )
    dataset_subset: str = field(
        default="both", metadata={"help": "Which half of AesCode-358K: 'web', 'plot' or 'both'.", "choices": SUBSETS}
    )
    categories: list[str] | None = field(
        default=None,
        metadata={"help": "Keep only these categories (website, 3d, game, ui_component, data_visualization, plot)."},
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Train on at most this many rows (a random draw with --seed)."}
    )
    eval_samples: int = field(
        default=0, metadata={"help": "Rows held out for evaluation (needed when --eval_strategy is not 'no')."}
    )
    tiny_hidden_size: int = field(
        default=64, metadata={"help": "Hidden size of the `tiny-random:causal` model (2 layers, byte-level tokenizer)."}
    )
    outline_pages: bool = field(
        default=False,
        metadata={
            "help": "Train on short outlines of the webpages (title, body style, heading, first paragraph) instead "
            "of the whole pages: a curriculum for tiny models (`make demo`)."
        },
    )
    outline_faults: bool = field(
        default=False,
        metadata={
            "help": "With --outline_pages, also train on a copy of each outline with one common lint fault (single "
            "quotes, an upper-case tag or an unclosed heading), so that the GRPO stage's lint gate has faults to "
            "teach the model to avoid (`make demo`)."
        },
    )
    conversation_format: str = field(
        default="messages",
        metadata={
            "help": "'messages' (use --assistant_only_loss to train on the answers only; needs a chat template with "
            "generation markers, which TRL adds for Qwen3) or 'prompt_completion' (answers only, any template).",
            "choices": FORMATS,
        },
    )


def main(script_args, training_args, model_args):
    from accelerate import PartialState

    model_name = model_args.model_name_or_path
    if model_name == "tiny-random:causal":
        # The GRPO recipe's tiny model, so that the two stages of the tiny pipeline use the same architecture.
        model_name = save_tiny_chat_model(
            training_args.output_dir, PartialState(), hidden_size=script_args.tiny_hidden_size
        )
    elif model_name.startswith("tiny-random:"):
        raise ValueError(f"Unknown tiny model {model_name!r}: use 'tiny-random:causal'.")

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": dtype,
        **(training_args.model_init_kwargs or {}),
    }
    tokenizer = AutoTokenizer.from_pretrained(
        model_name, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
    )

    with PartialState().main_process_first():
        dataset = load_aescode(
            script_args.dataset_name,
            subset=script_args.dataset_subset,
            categories=script_args.categories,
            max_rows=script_args.max_samples,
            seed=training_args.seed if script_args.max_samples else None,
            conversation_format=script_args.conversation_format,
            outline_pages=script_args.outline_pages,
            outline_faults=script_args.outline_faults,
            split=script_args.dataset_train_split,
            name=script_args.dataset_config,
            num_proc=training_args.dataset_num_proc,
        )
    eval_dataset = None
    if training_args.eval_strategy != "no":
        if script_args.eval_samples < 1:
            raise ValueError("`--eval_strategy` is set but `--eval_samples` is 0: hold out some rows to evaluate on.")
        split = dataset.train_test_split(test_size=script_args.eval_samples, seed=training_args.seed)
        dataset, eval_dataset = split["train"], split["test"]

    trainer = AesCoderSFTTrainer(
        model=model_name,
        args=training_args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:  # pushed with the model; the card shows it
        save_training_config(training_args.output_dir, script_args, training_args, model_args, recipe=RECIPE)
    name = script_args.dataset_name
    # Only a Hub id is worth linking in the card and its metadata.
    dataset_name = name if name != AESCODE_SAMPLE and not os.path.exists(name) else None
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=dataset_name)
    if trainer.accelerator.is_main_process:
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        print(f"Model, tokenizer and model card saved to {training_args.output_dir}")
        if losses:
            print(f"Training loss: {losses[0]:.4f} -> {losses[-1]:.4f} over {trainer.state.global_step} steps")
        grpo_config = "tiny" if model_args.model_name_or_path == "tiny-random:causal" else "paper"
        print(
            "Next, the RL stage: accelerate launch recipes/aescoder_grpo.py --config "
            f"recipes/configs/aescoder_grpo_{grpo_config}.yaml --model_name_or_path {training_args.output_dir}"
        )
    trainer.end()



def make_parser() -> TrlParser:
    """The recipe's argument parser (`--config` YAML + command line); the tests parse every shipped YAML with it."""
    return TrlParser((AesCodeScriptArguments, SFTConfig, ModelConfig))

if __name__ == "__main__":
    parser = make_parser()
    main(*parser.parse_args_and_config())
