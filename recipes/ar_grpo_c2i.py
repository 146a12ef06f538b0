# /// script
# dependencies = [
#     "trl_ext",
#     "trl>=1.16,<1.17",
# ]
# ///
"""
AR-GRPO for class-to-image LlamaGen (https://huggingface.co/papers/2508.06924).

The paper recipe (LlamaGen GPT-XL at 384 px, ImageNet class prompts, 4 GPUs x 8 images, 400 steps). First convert
LlamaGen's public checkpoints (https://huggingface.co/FoundationVision/LlamaGen):

```bash
python -m trl_ext.models.llamagen.convert gpt c2i_XL_384.pt llamagen-c2i-xl-384 --image-size 384
python -m trl_ext.models.llamagen.convert vq vq_ds16_c2i.pt llamagen-vq16 --image-size 384
accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml --num_processes 4 recipes/ar_grpo_c2i.py \
    --config recipes/configs/ar_grpo_c2i_xl384.yaml
```

A tiny offline run (random-weight generator and tokenizer, about a minute on a laptop CPU):

```bash
accelerate launch --cpu recipes/ar_grpo_c2i.py --config recipes/configs/ar_grpo_c2i_tiny.yaml
torchrun --nproc_per_node 2 recipes/ar_grpo_c2i.py --config recipes/configs/ar_grpo_c2i_tiny.yaml
```

`--model_name_or_path tiny-random:c2i` builds a tiny random generator and VQ tokenizer with `trl_ext.testing_image`.
The prompts are the ImageNet classes, cycled: a `class_label` and the text "a photo of {class name}" (the paper's
text for CLIP/HPS rewards; names from open_clip when installed). `--num_classes` keeps the first classes only.

Publishing: `--push_to_hub --hub_model_id <user>/<name>` uploads the generator, the VQ image tokenizer (`vq/`), the
model card (`README.md`) and `training_config.yaml` (the arguments of the run, which this recipe accepts again with
`--config`); the card's quickstart loads the repository as pushed. `HF_ENDPOINT` points the push at another Hub.
"""

import os
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from trl import ModelConfig, ScriptArguments, TrlParser, get_peft_config

from trl_ext.data import is_local_dataset, load_prompt_dataset
from trl_ext.model_card import save_training_config
from trl_ext.models.llamagen import LlamaGenConfig
from trl_ext.rewards.image import AR_GRPO_REWARD_FUNCS as REWARD_FUNCS
from trl_ext.rewards.image import ImageRewardArguments, recipe_reward_funcs
from trl_ext.trainers.ar_image_grpo_config import ARImageGRPOConfig
from trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer


@dataclass
class ARGRPOScriptArguments(ScriptArguments, ImageRewardArguments):
    vq_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Converted LlamaGen VQ tokenizer (JanusVQVAE folder or Hub id)."}
    )
    num_classes: int | None = field(
        default=None, metadata={"help": "Train on the first this many classes; defaults to all of the generator's."}
    )
    num_prompts: int = field(default=10000, metadata={"help": "Rows of the prompt dataset (classes cycled)."})


def class_names(num_classes: int) -> list[str]:
    try:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    except ImportError:
        IMAGENET_CLASSNAMES = ()
    if num_classes == len(IMAGENET_CLASSNAMES):
        return list(IMAGENET_CLASSNAMES)
    return [f"class {i}" for i in range(num_classes)]


def build_tiny_models(output_dir: str, accelerator_state) -> tuple[str, str]:
    """Save a tiny random c2i generator and VQ tokenizer once (main process first); return their folders."""
    from trl_ext.testing_image import make_tiny_llamagen, make_tiny_vq, save_tiny_image_models

    # A leading "_" keeps it out of `push_to_hub` (TRL/transformers ignore `_*` when uploading the output folder).
    path = os.path.join(output_dir, "_tiny_base_models")
    with accelerator_state.main_process_first():
        if not os.path.exists(os.path.join(path, "gpt", "config.json")):
            save_tiny_image_models(make_tiny_llamagen(), make_tiny_vq(channels=128, downsample_ratio=1), path)
    return os.path.join(path, "gpt"), os.path.join(path, "vq")


def main(script_args, training_args, model_args):
    from accelerate import PartialState

    model_name, vq_name = model_args.model_name_or_path, script_args.vq_model_name_or_path
    if model_name == "tiny-random:c2i":
        model_name, vq_name = build_tiny_models(training_args.output_dir, PartialState())
    if vq_name is None:
        raise ValueError(
            "Pass `--vq_model_name_or_path` (a LlamaGen VQ tokenizer converted with trl_ext.models.llamagen.convert)."
        )
    reward_funcs = recipe_reward_funcs(script_args.reward_funcs, script_args.reward_mix, REWARD_FUNCS, training_args)

    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    training_args.model_init_kwargs = {"revision": model_args.model_revision, "dtype": dtype}

    config = LlamaGenConfig.from_pretrained(model_name, revision=model_args.model_revision)
    if config.condition_type != "c2i":
        raise ValueError(f"{model_name} is a {config.condition_type} generator; use recipes/ar_grpo_t2i.py.")
    num_classes = script_args.num_classes or config.num_classes
    if script_args.dataset_name:
        # e.g. `python -m trl_ext.data.imagenet`'s folder: class_label, class_name, prompt
        dataset = load_prompt_dataset(script_args.dataset_name, script_args.dataset_config)[
            script_args.dataset_train_split
        ]
        missing = [c for c in ("class_label", "prompt") if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"`dataset_name` {script_args.dataset_name!r} lacks the column(s) {missing} (columns: "
                f"{dataset.column_names}); build it with `python -m trl_ext.data.imagenet`."
            )
        if script_args.num_classes:
            dataset = dataset.filter(lambda row: row["class_label"] < num_classes)
        if max(dataset["class_label"]) >= config.num_classes:
            raise ValueError(
                f"`dataset_name` has class labels up to {max(dataset['class_label'])}, but {model_name} knows "
                f"{config.num_classes} classes."
            )
    else:
        names = class_names(config.num_classes)[:num_classes]
        labels = [i % num_classes for i in range(script_args.num_prompts)]
        dataset = Dataset.from_dict({"class_label": labels, "prompt": [f"a photo of {names[i]}" for i in labels]})

    trainer = ARImageGRPOTrainer(
        model=model_name,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset,
        vq_model=vq_name,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:  # pushed with the model; the card shows it
        save_training_config(
            training_args.output_dir, script_args, training_args, model_args, recipe="recipes/ar_grpo_c2i.py"
        )
    # The class ids are ImageNet-1k's when the generator has its 1000 classes.
    dataset_name = "ILSVRC/imagenet-1k" if num_classes == 1000 else None
    if script_args.dataset_name and not is_local_dataset(script_args.dataset_name):
        dataset_name = script_args.dataset_name
    trainer.create_model_card(dataset_name=dataset_name)
    if training_args.push_to_hub:  # model, VQ tokenizer (vq/), card and training_config.yaml
        trainer.push_to_hub(dataset_name=dataset_name)
    if trainer.accelerator.is_main_process:
        print(f"Model and model card saved to {training_args.output_dir}")


def make_parser() -> TrlParser:
    """The recipe's argument parser (`--config` YAML + command line); the tests parse every shipped YAML with it."""
    return TrlParser((ARGRPOScriptArguments, ARImageGRPOConfig, ModelConfig))


if __name__ == "__main__":
    parser = make_parser()
    main(*parser.parse_args_and_config())
