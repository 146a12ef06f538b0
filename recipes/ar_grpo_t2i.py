# /// script
# dependencies = [
#     "trl_ext",
#     "trl>=1.16,<1.17",
# ]
# ///
"""
AR-GRPO for text-to-image LlamaGen (https://huggingface.co/papers/2508.06924).

The paper recipe (LlamaGen T2I GPT-XL at 256 px with FLAN-T5-XL caption features, the 30K COCO captions of LlamaGen's
evaluation set, 4 GPUs x 16 images, beta 1.0, 600 steps). Convert the checkpoints
(https://huggingface.co/peizesun/llamagen_t2i) and fetch the captions (LlamaGen's `evaluations/t2i/coco_captions.csv`):

```bash
python -m trl_ext.models.llamagen.convert gpt t2i_XL_stage1_256.pt llamagen-t2i-xl-256 --image-size 256
python -m trl_ext.models.llamagen.convert vq vq_ds16_t2i.pt llamagen-vq16-t2i --image-size 256
accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml --num_processes 4 recipes/ar_grpo_t2i.py \
    --config recipes/configs/ar_grpo_t2i_xl256.yaml
```

A tiny offline run (random-weight generator, tokenizer and T5 encoder, about a minute on a laptop CPU):

```bash
accelerate launch --cpu recipes/ar_grpo_t2i.py --config recipes/configs/ar_grpo_t2i_tiny.yaml
torchrun --nproc_per_node 2 recipes/ar_grpo_t2i.py --config recipes/configs/ar_grpo_t2i_tiny.yaml
```

`--model_name_or_path tiny-random:t2i` builds a tiny random generator, VQ tokenizer and T5 encoder (with a byte-level
tokenizer) with `trl_ext.testing_image`. `--dataset_name` takes a Hub id, a local `.csv`/`.json`/`.jsonl` file, or
`trl_ext/tiny_captions` (a few captions bundled here); `--caption_column` names the caption column.

Publishing: `--push_to_hub --hub_model_id <user>/<name>` uploads the generator, the VQ image tokenizer (`vq/`), a text
encoder that is not a Hub model (`text_encoder/`), the model card (`README.md`) and `training_config.yaml` (the
arguments of the run, which this recipe accepts again with `--config`); the card's quickstart loads the repository as
pushed. `HF_ENDPOINT` points the push at another Hub.
"""

import os
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import AutoTokenizer, T5EncoderModel
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from trl_ext.data import is_local_dataset, load_prompt_dataset
from trl_ext.distributed import frozen_model_loading
from trl_ext.model_card import save_training_config
from trl_ext.models.llamagen import LlamaGenConfig
from trl_ext.rewards.image import AR_GRPO_REWARD_FUNCS as REWARD_FUNCS
from trl_ext.rewards.image import ImageRewardArguments, recipe_reward_funcs
from trl_ext.trainers.ar_image_grpo_config import ARImageGRPOConfig
from trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer

TINY_CAPTIONS = "trl_ext/tiny_captions"
CAPTIONS = [
    "a red apple on a wooden table",
    "a cat sleeping on a sofa",
    "two dogs running on the beach",
    "a bowl of fruit in the sunlight",
    "a city street at night with neon lights",
    "a snowy mountain under a blue sky",
    "a green field with a single tree",
    "a plate of pasta with tomato sauce",
    "a yellow taxi in the rain",
    "an astronaut riding a horse",
    "a lighthouse on a rocky coast",
    "a bicycle leaning against a brick wall",
    "a cup of coffee next to a laptop",
    "a flock of birds over a lake",
    "a child flying a kite in a park",
    "a sailboat on a calm sea at sunset",
]


@dataclass
class ARGRPOT2IScriptArguments(ScriptArguments, ImageRewardArguments):
    vq_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Converted LlamaGen VQ tokenizer (JanusVQVAE folder or Hub id)."}
    )
    text_encoder_name_or_path: str = field(
        default="google/flan-t5-xl", metadata={"help": "T5 encoder of the captions (LlamaGen: FLAN-T5-XL)."}
    )
    caption_column: str = field(default="caption", metadata={"help": "Dataset column with the captions."})
    max_prompts: int | None = field(default=None, metadata={"help": "Keep at most this many captions."})


def build_tiny_models(output_dir: str, accelerator_state) -> tuple[str, str, str]:
    """Save a tiny random t2i generator, VQ tokenizer and T5 encoder once (main process first)."""
    from trl_ext.testing import make_tokenizer
    from trl_ext.testing_image import make_tiny_llamagen, make_tiny_t5_encoder, make_tiny_vq, save_tiny_image_models

    # A leading "_" keeps it out of `push_to_hub` (TRL/transformers ignore `_*` when uploading the output folder).
    path = os.path.join(output_dir, "_tiny_base_models")
    with accelerator_state.main_process_first():
        if not os.path.exists(os.path.join(path, "text_encoder", "config.json")):
            model = make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=24)
            save_tiny_image_models(model, make_tiny_vq(channels=128, downsample_ratio=1), path)
            tokenizer = make_tokenizer(with_mask_token=False)
            make_tiny_t5_encoder(len(tokenizer), d_model=16).save_pretrained(os.path.join(path, "text_encoder"))
            tokenizer.save_pretrained(os.path.join(path, "text_encoder"))
    return os.path.join(path, "gpt"), os.path.join(path, "vq"), os.path.join(path, "text_encoder")


def load_captions(script_args) -> Dataset:
    name = script_args.dataset_name
    if name == TINY_CAPTIONS:
        return Dataset.from_dict({"prompt": CAPTIONS * 64})
    if name is None:
        raise ValueError(
            f"Pass `--dataset_name` (a Hub id, a `trl_ext.data.coco` folder, a .csv/.json/.jsonl/.parquet file, or "
            f"{TINY_CAPTIONS})."
        )
    loaded = load_prompt_dataset(name, script_args.dataset_config)
    split = script_args.dataset_train_split if script_args.dataset_train_split in loaded else "train"
    dataset = loaded[split]
    if script_args.caption_column not in dataset.column_names:
        raise ValueError(
            f"No `{script_args.caption_column}` column in {name} (columns: {dataset.column_names}); set "
            "`--caption_column` (LlamaGen's coco_captions.csv: Prompt)."
        )
    dataset = dataset.select_columns([script_args.caption_column])
    if script_args.caption_column != "prompt":
        dataset = dataset.rename_column(script_args.caption_column, "prompt")
    if script_args.max_prompts is not None:
        dataset = dataset.select(range(min(script_args.max_prompts, len(dataset))))
    return dataset


def main(script_args, training_args, model_args):
    from accelerate import PartialState

    model_name, vq_name = model_args.model_name_or_path, script_args.vq_model_name_or_path
    text_encoder_name = script_args.text_encoder_name_or_path
    if model_name == "tiny-random:t2i":
        model_name, vq_name, text_encoder_name = build_tiny_models(training_args.output_dir, PartialState())
    if vq_name is None:
        raise ValueError(
            "Pass `--vq_model_name_or_path` (a LlamaGen VQ tokenizer converted with trl_ext.models.llamagen.convert)."
        )
    reward_funcs = recipe_reward_funcs(script_args.reward_funcs, script_args.reward_mix, REWARD_FUNCS, training_args)

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    training_args.model_init_kwargs = {"revision": model_args.model_revision, "dtype": dtype}
    config = LlamaGenConfig.from_pretrained(model_name, revision=model_args.model_revision)
    if config.condition_type != "t2i":
        raise ValueError(f"{model_name} is a {config.condition_type} generator; use recipes/ar_grpo_c2i.py.")

    # The T5 encoder is frozen and runs once per distinct caption per rollout; under ZeRO-3 each process keeps it
    # whole (only the policy is partitioned).
    tokenizer = AutoTokenizer.from_pretrained(text_encoder_name)
    with frozen_model_loading():
        text_encoder = T5EncoderModel.from_pretrained(text_encoder_name, dtype=dtype if dtype != "auto" else None)

    trainer = ARImageGRPOTrainer(
        model=model_name,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=load_captions(script_args),
        processing_class=tokenizer,
        vq_model=vq_name,
        text_encoder=text_encoder,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:  # pushed with the model; the card shows it
        save_training_config(
            training_args.output_dir, script_args, training_args, model_args, recipe="recipes/ar_grpo_t2i.py"
        )
    hub_dataset = script_args.dataset_name
    if hub_dataset == TINY_CAPTIONS or is_local_dataset(hub_dataset):
        hub_dataset = None
    trainer.create_model_card(dataset_name=hub_dataset)
    if training_args.push_to_hub:  # model, VQ tokenizer (vq/), local text encoder (text_encoder/), card, config
        trainer.push_to_hub(dataset_name=hub_dataset)
    if trainer.accelerator.is_main_process:
        print(f"Model and model card saved to {training_args.output_dir}")


def make_parser() -> TrlParser:
    """The recipe's argument parser (`--config` YAML + command line); the tests parse every shipped YAML with it."""
    return TrlParser((ARGRPOT2IScriptArguments, ARImageGRPOConfig, ModelConfig))


if __name__ == "__main__":
    parser = make_parser()
    main(*parser.parse_args_and_config())
