"""Model cards for trl_ext trainers, rendered from the templates in `model_cards/` (shipped as package data)."""

from __future__ import annotations

import importlib.resources
import os
from importlib.metadata import version

from huggingface_hub import ModelCard, ModelCardData


def _base_model(trainer) -> tuple[str, bool]:
    config = trainer.accelerator.unwrap_model(trainer.model).config
    name = getattr(config, "_name_or_path", "") or ""
    # A local folder (a checkpoint, a test model) is not a Hub id: naming it as one renders "[None]"-style links.
    is_hub = bool(name) and not os.path.isdir(name) and name.count("/") == 1
    return (name or "a randomly initialised model"), is_hub


def render_model_card(
    trainer,
    template: str,
    model_name: str | None = None,
    dataset_name: str | None = None,
    tags: str | list[str] | None = None,
    hyperparameters: dict | None = None,
    **extra,
) -> ModelCard:
    """Render `model_cards/<template>` for a trainer (any trl_ext trainer: reads `_name`, `_paper`, `_tag_names`)."""
    base_model, base_is_hub = _base_model(trainer)
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags = sorted({*tags, *trainer._tag_names})
    args = trainer.args
    model_name = model_name or os.path.basename(os.path.normpath(args.output_dir))
    hub_model_id = trainer.hub_model_id or args.hub_model_id or model_name
    card_data = ModelCardData(
        base_model=base_model if base_is_hub else None,
        datasets=[dataset_name] if dataset_name else None,
        library_name="transformers",
        model_name=model_name,
        tags=tags,
        pipeline_tag="text-generation",
    )
    weights = getattr(trainer, "reward_weights", None)
    weights = weights.tolist() if weights is not None else []
    rewards = list(zip(getattr(trainer, "reward_func_names", []), weights))
    template_path = importlib.resources.files("trl_ext.model_cards").joinpath(template)
    wandb_url = None
    try:
        import wandb

        wandb_url = wandb.run.url if wandb.run is not None else None
    except ImportError:
        pass
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        hub_model_id=hub_model_id,
        base_model=base_model,
        base_model_is_hub=base_is_hub,
        dataset_name=dataset_name,
        paper_title=trainer._paper["title"],
        paper_id=trainer._paper["id"],
        citation=trainer._paper["citation"],
        trainer_class=type(trainer).__name__,
        global_step=trainer.state.global_step,
        num_processes=trainer.accelerator.num_processes,
        device_type=trainer.accelerator.device.type,
        rewards=rewards,
        hyperparameters=list((hyperparameters or {}).items()),
        wandb_url=wandb_url,
        trl_ext_version=version("trl_ext"),
        trl_version=version("trl"),
        transformers_version=version("transformers"),
        pytorch_version=version("torch"),
        **extra,
    )


def write_model_card(trainer, template: str, **kwargs) -> None:
    """Render and save `README.md` in `trainer.args.output_dir` (on the main process only)."""
    if not trainer.is_world_process_zero():
        return
    card = render_model_card(trainer, template, **kwargs)
    card.save(os.path.join(trainer.args.output_dir, "README.md"))
