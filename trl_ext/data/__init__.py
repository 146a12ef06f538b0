"""Small datasets bundled with `trl_ext`."""

import json
from importlib import resources

CODE_PROBLEMS_FILE = "code_problems.jsonl"


def load_code_problems(system_prompt: str | None = None):
    """
    Load the 20 bundled HumanEval problems (MIT License, see `trl_ext/data/README.md`) as a conversational dataset.

    Args:
        system_prompt (`str`, *optional*):
            Optional system message prepended to each prompt.

    Returns:
        `datasets.Dataset`: Columns `prompt` (list of messages asking for the function in one fenced ```` ```python ````
        block, the format [`~trl_ext.rewards.code_format_reward`] expects), `test_cases` (list of standalone assert
        strings), `reference_solution`, `task_id` and `entry_point`.
    """
    from datasets import Dataset

    rows = []
    text = resources.files(__name__).joinpath(CODE_PROBLEMS_FILE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        problem = json.loads(line)
        request = (
            "Complete the following Python function. Reply with the complete function, including the imports it "
            "needs, in a single ```python code block at the end of your answer.\n\n"
            f"```python\n{problem['prompt']}```"
        )
        messages = [{"role": "user", "content": request}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        rows.append(
            {
                "prompt": messages,
                "test_cases": problem["test_cases"],
                "reference_solution": problem["reference_solution"],
                "task_id": problem["task_id"],
                "entry_point": problem["entry_point"],
            }
        )
    return Dataset.from_list(rows)


WEB_DESIGN_PROMPTS_FILE = "web_design_prompts.jsonl"
WEB_DESIGN_CATEGORIES = ("website", "3d", "game", "ui_component", "data_visualization")
# The instruction AesCoder-style models are trained with: one self-contained page in one fenced block.
WEB_DESIGN_SYSTEM_PROMPT = (
    "You are an expert front-end engineer and designer. Answer with one complete, self-contained HTML document "
    "(CSS in a <style> element, JavaScript in <script> elements; libraries from public CDNs are allowed) in a single "
    "```html code block. The page must look polished, be readable and responsive, and every control must work."
)


def load_web_design_prompts(categories=None, system_prompt: str | None = WEB_DESIGN_SYSTEM_PROMPT):
    """
    Load the 36 bundled web-design prompts, written for trl_ext in the five categories of AesCoder's OpenDesign
    benchmark (website, 3D, game, UI component, data visualisation), as a conversational dataset.

    Args:
        categories (`Sequence[str]`, *optional*):
            Keep only these categories (any of `WEB_DESIGN_CATEGORIES`).
        system_prompt (`str`, *optional*, defaults to `WEB_DESIGN_SYSTEM_PROMPT`):
            System message prepended to each prompt; `None` for none.

    Returns:
        `datasets.Dataset`: Columns `prompt` (list of messages), `instruction` (the request alone), `category` and
        `id`.
    """
    from datasets import Dataset

    if categories is not None:
        unknown = sorted(set(categories) - set(WEB_DESIGN_CATEGORIES))
        if unknown:
            raise ValueError(f"Unknown `categories` {unknown}; choose from {list(WEB_DESIGN_CATEGORIES)}.")
    rows = []
    text = resources.files(__name__).joinpath(WEB_DESIGN_PROMPTS_FILE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if categories is not None and item["category"] not in categories:
            continue
        messages = [{"role": "user", "content": item["instruction"]}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        rows.append({"prompt": messages, **item})
    return Dataset.from_list(rows)


# Hub-ready dataset builders: `python -m trl_ext.data.<acecode|websight|imagenet|coco> --output_dir DIR
# [--push_to_hub --hub_dataset_id ORG/NAME]`, or these classes / `build_*` functions from Python. Exported lazily: an
# eager import would put the module in `sys.modules` before `python -m` runs it (runpy then warns).
_BUILDER_EXPORTS = {
    "AceCodeHardArguments": "acecode",
    "AceCodeHardBuilder": "acecode",
    "build_acecode_hard": "acecode",
    "WebSightPromptsArguments": "websight",
    "WebSightPromptsBuilder": "websight",
    "build_websight_prompts": "websight",
    "categorize_web_idea": "websight",
    "ImageNetPromptsArguments": "imagenet",
    "ImageNetPromptsBuilder": "imagenet",
    "build_imagenet_prompts": "imagenet",
    "COCOCaptionsArguments": "coco",
    "COCOCaptionsBuilder": "coco",
    "build_coco_captions": "coco",
}


def looks_like_local_path(name: str) -> bool:
    """Whether `name` can only be a local path, never a Hub id (`org/name`): absolute, `./`, `../`, `~`, or deeper."""
    import os

    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


_FILE_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_prompt_dataset(name: str, config: str | None = None):
    """
    The dataset a recipe trains on, from wherever a user keeps it, as a `DatasetDict`:

    - a folder written by `save_to_disk` (what every `python -m trl_ext.data.<builder>` writes): `load_from_disk`;
      a single split becomes `train`;
    - a `.json`/`.jsonl`/`.csv`/`.parquet` file: loaded with the matching `datasets` builder;
    - anything else: a Hub id (with `config` as its configuration), or a folder of data files.

    A path that looks local but does not exist is an error naming it (rather than a Hub lookup of a path).
    """
    import os

    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if any(os.path.exists(os.path.join(expanded, f)) for f in ("dataset_dict.json", "state.json")):
            loaded = load_from_disk(expanded)
            return DatasetDict({"train": loaded}) if isinstance(loaded, Dataset) else loaded
        return load_dataset(expanded, name=config)
    extension = os.path.splitext(name)[1].lower()
    if extension in _FILE_FORMATS:
        if not os.path.isfile(expanded):
            raise FileNotFoundError(f"`dataset_name` {name!r} is not an existing file.")
        return load_dataset(_FILE_FORMATS[extension], data_files=expanded)
    if looks_like_local_path(name):
        raise FileNotFoundError(
            f"`dataset_name` {name!r} is not an existing folder or file (and cannot be a Hub id, 'org/name')."
        )
    return load_dataset(name, name=config)


def is_local_dataset(name: str | None) -> bool:
    """Whether `name` points at a local file or folder (not pushed, so a card must not link it as a Hub dataset)."""
    import os

    return bool(name) and (os.path.exists(os.path.expanduser(name)) or name.startswith("trl_ext/"))


def __getattr__(name: str):
    if name in _BUILDER_EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_BUILDER_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# AesCode-358K for the SFT stage of AesCoder (`python -m trl_ext.data.aescode` builds it), exported lazily as above.
_BUILDER_EXPORTS.update(
    dict.fromkeys(
        (
            "AESCODE_HUB_ID",
            "AESCODE_SAMPLE",
            "PLOT_SYSTEM_PROMPT",
            "load_aescode",
            "AesCodeSFTArguments",
            "AesCodeSFTBuilder",
            "build_aescode_sft",
        ),
        "aescode",
    )
)
