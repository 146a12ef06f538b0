from __future__ import annotations

from collections import Counter

from datasets import Dataset
from trl import SFTTrainer

from ..data import WEB_DESIGN_SYSTEM_PROMPT
from ..data.aescode import AESCODER_CITATION, PLOT_SYSTEM_PROMPT
from ..model_card import write_model_card

CITATION = AESCODER_CITATION


def _trained_system_prompts(dataset: Dataset | None) -> dict[str, str | None]:
    """The system message of the first webpage and plot rows of a `load_aescode` dataset (the defaults otherwise)."""
    prompts = {"web": WEB_DESIGN_SYSTEM_PROMPT, "plot": PLOT_SYSTEM_PROMPT}
    if dataset is None or "kind" not in dataset.column_names:
        return prompts
    column = "messages" if "messages" in dataset.column_names else "prompt"
    if column not in dataset.column_names:
        return prompts
    kinds = dataset["kind"]
    for kind in prompts:
        if kind in kinds:
            messages = dataset[kinds.index(kind)][column]
            prompts[kind] = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    return prompts


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 3600 else f"{seconds / 3600:.1f} h"


class AesCoderSFTTrainer(SFTTrainer):
    """
    The supervised stage of AesCoder ([paper](https://huggingface.co/papers/2510.23272)): [`~trl.SFTTrainer`] on
    AesCode-358K (loaded with [`~trl_ext.data.load_aescode`]), before GRPO with agentic aesthetic rewards
    ([`AesCoderGRPOTrainer`]).

    Training is plain SFT; the subclass only writes an AesCoder model card: base model, data mix by category,
    hyper-parameters (with the samples per optimizer step), hardware, first and last training loss, a quickstart that
    prompts with the system messages the model was trained with, and how to run the RL stage from the result.

    Example:

    ```python
    >>> from trl import SFTConfig
    >>> from trl_ext.data import load_aescode
    >>> from trl_ext.trainers import AesCoderSFTTrainer
    >>> dataset = load_aescode("SamuelBang/AesCode-358K")  # doctest: +SKIP
    >>> args = SFTConfig("AesCoder-4B-SFT", num_train_epochs=3, learning_rate=1e-5, lr_scheduler_type="cosine",
    ...                  warmup_steps=0.1, max_length=8192, bf16=True)  # the paper's SFT stage, on GPUs  # doctest: +SKIP
    >>> trainer = AesCoderSFTTrainer("Qwen/Qwen3-4B-Instruct-2507", args=args, train_dataset=dataset)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    ```
    """

    _tag_names = ["trl", "trl_ext", "sft", "aescoder", "code-aesthetics"]
    _name = "AesCoder-SFT"
    _paper = {"title": "Code Aesthetics with Agentic Reward Feedback", "id": "2510.23272", "citation": CITATION}

    def create_model_card(self, model_name=None, dataset_name=None, tags=None, **kwargs):
        """
        Write `README.md` in `output_dir` from `model_cards/aescoder_sft.md`. `kwargs` go to
        [`~trl_ext.model_card.render_model_card`] (e.g. `license`, `eval_report`).
        """
        from peft import PeftModel  # imported here: `import trl_ext` should not pay for it

        args = self.args
        dataset = self.train_dataset if isinstance(self.train_dataset, Dataset) else None
        # A `load_aescode` dataset has a `category` column: the card shows the data mix.
        data_mix = []
        if dataset is not None and "category" in dataset.column_names:
            data_mix = sorted(Counter(dataset["category"]).items(), key=lambda item: (-item[1], item[0]))
        losses = [entry["loss"] for entry in self.state.log_history if "loss" in entry]
        eval_losses = [entry["eval_loss"] for entry in self.state.log_history if "eval_loss" in entry]
        runtime = next((entry["train_runtime"] for entry in self.state.log_history if "train_runtime" in entry), None)
        model = self.accelerator.unwrap_model(self.model)
        peft = model.peft_config[model.active_adapter] if isinstance(model, PeftModel) else None
        system_prompts = _trained_system_prompts(dataset)
        write_model_card(
            self,
            "aescoder_sft.md",
            model_name=model_name,
            dataset_name=dataset_name,
            tags=[
                "code",
                "html",
                "web-design",
                "data-visualization",
                *([tags] if isinstance(tags, str) else tags or []),
            ],
            pipeline_tag="text-generation",
            hyperparameters={
                "num_train_epochs": args.num_train_epochs if args.max_steps <= 0 else None,
                "max_steps": args.max_steps if args.max_steps > 0 else None,
                "max_length": args.max_length,
                "packing": args.packing,
                "loss on": (
                    "assistant turns"
                    if args.assistant_only_loss
                    else ("completions" if self.completion_only_loss else "whole conversation")
                ),
                "activation_checkpointing": args.activation_checkpointing,
                "peft": f"{peft.peft_type.value} r={peft.r} alpha={peft.lora_alpha}" if peft is not None else None,
            },
            num_train_rows=len(dataset) if dataset is not None else None,
            data_mix=data_mix,
            first_loss=f"{losses[0]:.4g}" if losses else None,
            final_loss=f"{losses[-1]:.4g}" if losses else None,
            eval_loss=f"{eval_losses[-1]:.4g}" if eval_losses else None,
            train_runtime=_duration(runtime) if runtime is not None else None,
            web_system_prompt=repr(system_prompts["web"]) if system_prompts["web"] is not None else None,
            plot_system_prompt=repr(system_prompts["plot"]) if system_prompts["plot"] is not None else None,
            max_new_tokens=min(args.max_length or 4096, 8192),
            **kwargs,
        )
