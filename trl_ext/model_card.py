"""
Model cards and publishing helpers for trl_ext trainers and recipes.

Every trl_ext trainer overrides `create_model_card` to render its template from `model_cards/` (shipped as the package
`trl_ext.model_cards`) with [`write_model_card`]; the card states the base model, datasets, method and paper, reward
functions and weights, hyper-parameters, hardware and steps, training and evaluation results, a quickstart that loads
the model with the right class, citations, and Hub metadata (`license`, `tags`, `base_model`, `datasets`,
`pipeline_tag`, `library_name`, `model-index` when there are evaluation results).

What the card picks up from the output folder when it is rendered:

- `training_config.yaml` ([`TRAINING_CONFIG_NAME`]): the recipe arguments, written by [`save_training_config`]; the
  card shows it and the command that reproduces the run.
- `eval/report.json` ([`EVAL_REPORT_PATH`]): an evaluation report, either `recipes/aescoder_eval.py`'s (OpenDesign-style
  static / interactive scores, per category) or a flat `{"metric": value}` JSON. Write it with
  `python recipes/aescoder_eval.py --model_name_or_path <output_dir> --output_dir <output_dir>/eval` before pushing,
  pass `eval_report=` to `create_model_card`, or add it to an existing card with
  `python -m trl_ext.model_card add-eval <output_dir> [--report path/to/report.json] [--push_to_hub <repo_id>]`.
  The code and image evaluators (`python -m trl_ext.eval.code`, `python -m trl_ext.eval.image`) write reports with a
  `summary` per benchmark and a ready `model_index`, which become a table and the card's `model-index`.

Metadata is validated offline by [`validate_model_card`]: `huggingface_hub.ModelCard.validate()` posts the card to the
Hub's `/api/validate-yaml`, which needs the network; here the YAML is parsed into
[`~huggingface_hub.ModelCardData`] (which also checks `model-index`) and checked by [`metadata_errors`] against the
Hub's license ids ([`HUB_LICENSES`]) and task ids ([`HUB_PIPELINE_TAGS`]), the same rules that
[`~trl_ext.testing_hub.LocalHubServer`] applies to pushed READMEs.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import importlib.resources
import json
import logging
import math
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .models._native import NATIVE_MODEL_TYPES

logger = logging.getLogger(__name__)

TRAINING_CONFIG_NAME = "training_config.yaml"
EVAL_REPORT_PATH = os.path.join("eval", "report.json")
QUICKSTART_HEADING = "## Quick start"
_EVAL_START, _EVAL_END = "<!-- trl_ext:evaluation:start -->", "<!-- trl_ext:evaluation:end -->"

TRL_CITATION = """\
@software{vonwerra2020trl,
  title   = {{TRL: Transformers Reinforcement Learning}},
  author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallouédec, Quentin},
  license = {Apache-2.0},
  url     = {https://github.com/huggingface/trl},
  year    = {2020}
}"""

# Licenses of the base models the recipes name, so that cards written offline still inherit the right one. Other Hub
# models are looked up on the Hub when it is reachable.
KNOWN_BASE_MODEL_LICENSES = {
    "Qwen/Qwen3-4B-Instruct-2507": "apache-2.0",
    "Qwen/Qwen2.5-Coder-7B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-Coder-7B": "apache-2.0",
}

# The license ids the Hub accepts in a card's `license:` field (https://huggingface.co/docs/hub/repositories-licenses);
# anything else must be `other` with `license_name` / `license_link`.
HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research",
    "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openmdw-1.0",
    "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr",
    "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2",
    "llama3.3", "llama4", "gemma", "unknown", "other",
)  # fmt: skip

# The Hub's task ids for `pipeline_tag` (huggingface.js `PIPELINE_DATA`).
HUB_PIPELINE_TAGS = (
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "translation", "summarization", "feature-extraction", "text-generation",
    "fill-mask", "sentence-similarity", "text-to-speech", "text-to-audio", "automatic-speech-recognition",
    "audio-to-audio", "audio-classification", "audio-text-to-text", "voice-activity-detection", "depth-estimation",
    "image-classification", "object-detection", "image-segmentation", "text-to-image", "image-to-text",
    "image-to-image", "image-to-video", "unconditional-image-generation", "video-classification",
    "reinforcement-learning", "robotics", "tabular-classification", "tabular-regression", "tabular-to-text",
    "table-to-text", "multiple-choice", "text-ranking", "text-retrieval", "time-series-forecasting", "text-to-video",
    "image-text-to-text", "image-text-to-image", "image-text-to-video", "visual-question-answering",
    "document-question-answering", "zero-shot-image-classification", "graph-ml", "mask-generation",
    "zero-shot-object-detection", "text-to-3d", "image-to-3d", "image-feature-extraction", "video-text-to-text",
    "keypoint-detection", "visual-document-retrieval", "any-to-any", "video-to-video", "other",
)  # fmt: skip


_REQUIRED_METADATA = ("license", "tags", "library_name", "pipeline_tag")


# ----------------------------------------------------------------------------------------------------------------
# Metadata validation (offline)
# ----------------------------------------------------------------------------------------------------------------
def _split_front_matter(text: str) -> tuple[str | None, str]:
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", text, flags=re.DOTALL)
    if match is None:
        return None, text
    return match.group(1), text[match.end() :]


def metadata_errors(content: str, repo_type: str = "model") -> list[str]:
    """
    The errors the Hub's metadata validation reports for a README, checked offline.

    Args:
        content (`str`): The whole README (YAML front matter between `---` lines, then markdown).
        repo_type (`str`, *optional*, defaults to `"model"`): `"model"`, `"dataset"` or `"space"`.

    Returns:
        `list[str]`: Empty when valid. Checks: the front matter parses as a YAML mapping; `license` is one of
        [`HUB_LICENSES`]; `pipeline_tag` (model repos) is one of [`HUB_PIPELINE_TAGS`]; `tags`, `datasets`,
        `language` are strings or lists of strings; `base_model` is a repo id or a list of them; `model-index` has
        the structure the Hub's leaderboards read.
    """
    front, _ = _split_front_matter(content)
    if front is None:
        return []  # a README without metadata is a warning on the Hub, not an error
    try:
        data = yaml.safe_load(front)
    except yaml.YAMLError as e:
        return [f"Invalid YAML in the metadata block: {e}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["The metadata block must be a YAML mapping."]
    errors = []
    license_value = data.get("license")
    for value in license_value if isinstance(license_value, list) else [license_value]:
        if value is not None and value not in HUB_LICENSES:
            errors.append(f'"license" must be one of the Hub\'s license ids (or "other"), got {value!r}')
    pipeline_tag = data.get("pipeline_tag")
    if repo_type == "model" and pipeline_tag is not None and pipeline_tag not in HUB_PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" must be one of the Hub\'s task ids, got {pipeline_tag!r}')
    for key in ("tags", "datasets", "language"):
        value = data.get(key)
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, str) for v in values):
            errors.append(f'"{key}" must be a string or a list of strings, got {value!r}')
    base_model = data.get("base_model")
    values = base_model if isinstance(base_model, list) else [base_model]
    if base_model is not None and not all(isinstance(v, str) and v.count("/") <= 1 and v for v in values):
        errors.append(f'"base_model" must be a Hub repo id or a list of them, got {base_model!r}')
    model_index = data.get("model-index")
    if model_index is not None:
        try:
            for model in model_index:
                if not isinstance(model.get("name"), str):
                    raise ValueError("each entry needs a `name`")
                for result in model["results"]:
                    if not isinstance(result["task"]["type"], str) or not isinstance(result["dataset"]["type"], str):
                        raise ValueError("each result needs `task.type` and `dataset.type`")
                    for metric in result["metrics"]:
                        if not isinstance(metric["type"], str) or "value" not in metric:
                            raise ValueError("each metric needs `type` and `value`")
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            errors.append(f'"model-index" is malformed: {e}')
    return errors


def validate_model_card(card: ModelCard | str, required: tuple[str, ...] = _REQUIRED_METADATA) -> ModelCard:
    """
    Validate a model card's metadata without the network and return it as a [`~huggingface_hub.ModelCard`].

    Args:
        card ([`~huggingface_hub.ModelCard`] or `str`): The card or its text.
        required (`tuple[str, ...]`, *optional*): Metadata keys that must be present and non-empty.

    Raises:
        `ValueError`: naming every problem (unparsable YAML or `model-index`, unknown license or task id, missing
        keys).
    """
    text = card.content if isinstance(card, ModelCard) else card
    card = ModelCard(text)  # parses the YAML into ModelCardData (raises on an unparsable model-index)
    errors = metadata_errors(text)
    data = card.data.to_dict()
    errors += [f'"{key}" is missing from the card metadata' for key in required if not data.get(key)]
    if errors:
        raise ValueError("Invalid model card metadata:\n- " + "\n- ".join(errors))
    return card


def extract_quickstart(text: str) -> str:
    """
    The first ```` ```python ```` block after the card's `## Quick start` heading.

    The snippets name the repository once, as `model_id = "<namespace>/<name>"`, so that a test (or a user with a
    local copy) can point them at a folder by replacing that one line.
    """
    start = text.find(QUICKSTART_HEADING)
    if start < 0:
        raise ValueError(f"The card has no {QUICKSTART_HEADING!r} section.")
    # Fences are matched at line starts only: a snippet may hold ``` inside a string (e.g. a system prompt).
    match = re.search(r"^```python\n(.*?)^```[ \t]*$", text[start:], flags=re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError(f"No ```python block after {QUICKSTART_HEADING!r}.")
    return match.group(1)


# ----------------------------------------------------------------------------------------------------------------
# Training configuration
# ----------------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A YAML-safe version of a config value."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def training_config_dict(*configs, argv: list[str] | None = None) -> dict[str, Any]:
    """
    The arguments a recipe was given (its `--config` YAML, then the command-line overrides), with the values the
    parsed dataclasses ended up with. Secrets (`*_token` fields) are left out.

    Args:
        *configs: The parsed dataclasses (e.g. script arguments, the trainer config, `ModelConfig`).
        argv (`list[str]`, *optional*): The command line; defaults to `sys.argv[1:]`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    given: dict[str, Any] = {}
    for i, token in enumerate(argv):
        path = None
        if token == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
        if path is not None:
            with open(path, encoding="utf-8") as f:
                given.update(yaml.safe_load(f) or {})
    named = {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}
    named.discard("config")
    result: dict[str, Any] = {}
    if isinstance(given.get("env"), dict):
        result["env"] = {str(k): str(v) for k, v in given["env"].items()}
    for config in configs:
        for f in dataclasses.fields(config):
            if f.name.endswith("_token") or not f.init:
                continue
            if f.name in given or f.name in named:
                result[f.name] = _plain(getattr(config, f.name))
    return result


def save_training_config(
    output_dir: str,
    *configs,
    recipe: str | None = None,
    argv: list[str] | None = None,
    filename: str = TRAINING_CONFIG_NAME,
) -> str:
    """
    Write the arguments a recipe was run with to `<output_dir>/training_config.yaml`, a file the recipe accepts again
    with `--config` (so the pushed repository says exactly how to reproduce the model).

    Args:
        output_dir (`str`): Where to write it (the folder that is pushed).
        *configs: The parsed dataclasses, as returned by `TrlParser.parse_args_and_config()`.
        recipe (`str`, *optional*): The recipe's path relative to the trl_ext repository, e.g.
            `"recipes/coupled_grpo.py"`, recorded in the file's header.
        argv (`list[str]`, *optional*): The command line; defaults to `sys.argv[1:]`.
        filename (`str`, *optional*, defaults to `"training_config.yaml"`): The file name.

    Returns:
        `str`: The path written.
    """
    values = training_config_dict(*configs, argv=argv)
    header = "# Arguments this model was trained with (the recipe's --config YAML and command-line overrides).\n"
    if recipe:
        header += f"# Reproduce: accelerate launch {recipe} --config {filename}\n"
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, filename)
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    return path


def _read_training_config(output_dir: str) -> tuple[str | None, str | None, dict]:
    """(the YAML without its header comments, the reproduce command, the parsed values) of `training_config.yaml`."""
    path = os.path.join(output_dir, TRAINING_CONFIG_NAME)
    if not os.path.isfile(path):
        return None, None, {}
    text = open(path, encoding="utf-8").read()
    match = re.search(r"^# Reproduce: (.+)$", text, flags=re.MULTILINE)
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    values = yaml.safe_load(body) or {}
    return body, (match.group(1) if match else None), values if isinstance(values, dict) else {}


# ----------------------------------------------------------------------------------------------------------------
# Evaluation reports
# ----------------------------------------------------------------------------------------------------------------
def load_eval_report(source: str | os.PathLike | dict | None) -> dict | None:
    """
    Load an evaluation report: a dict, a JSON file, or a folder holding `eval/report.json`. `None` when there is
    none; a file that is not a JSON object raises a `ValueError` naming it.
    """
    if source is None or isinstance(source, dict):
        return source
    path = os.fspath(source)
    if os.path.isdir(path):
        path = os.path.join(path, EVAL_REPORT_PATH)
        if not os.path.isfile(path):
            return None
    with open(path, encoding="utf-8") as f:
        try:
            report = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"Evaluation report {path} is not valid JSON: {e}") from e
    if not isinstance(report, dict):
        raise ValueError(f"Evaluation report {path} must be a JSON object.")
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


_OPENDESIGN_COLUMNS = (
    ("static_total", "static aesthetics (/100)"),
    ("interactive", "interactive (/3)"),
    ("lint_pass_rate", "lint pass rate"),
    ("execution_pass_rate", "execution pass rate"),
    ("render_failure_rate", "render failure rate"),
)


def _is_opendesign_report(report: dict) -> bool:
    return isinstance(report.get("overall"), dict) and "static_total" in report["overall"]


# What each paper reported on its benchmarks, for the card's evaluation section (numbers from the papers).
_PAPER_REFERENCES = {
    "code": (
        "For reference, DiffuCoder reports EvalPlus pass@1 (greedy) of 72.0 / 65.2 / 75.1 / 61.9 on HumanEval / "
        "HumanEval+ / MBPP / MBPP+ for DiffuCoder-7B-Instruct and 73.2 / 68.3 / 78.6 / 67.5 after coupled-GRPO "
        "(arXiv 2506.20639); numbers from other prompts, lengths or decoding settings are not comparable."
    ),
    "image": (
        "For reference, LlamaGen reports ImageNet 256x256 FID 5.46 (B), 3.80 (L) and 2.62 (XL at 384) with CFG, against "
        "ADM's reference batch with ADM's TensorFlow evaluator; FIDs from other reference batches, sample counts or "
        "Inception ports are not comparable (see `trl_ext.eval.image`)."
    ),
}


def _is_benchmark_report(report: dict) -> bool:
    """A report of `trl_ext.eval.code` / `trl_ext.eval.image`: `kind`, a `summary` per benchmark, `model_index`."""
    return report.get("kind") in _PAPER_REFERENCES and isinstance(report.get("summary"), dict)


def _benchmark_section(report: dict) -> list[str]:
    summary = {name: metrics for name, metrics in report["summary"].items() if isinstance(metrics, dict)}
    metrics = list(dict.fromkeys(metric for values in summary.values() for metric in values))
    settings = report.get("settings") or {}
    shown = ", ".join(f"`{k}={v}`" for k, v in settings.items() if isinstance(v, (str, int, float, bool)))
    lines = [
        f"Evaluated with `python -m {report.get('evaluator') or 'trl_ext.eval.' + report['kind']}`"
        + (f" ({shown})." if shown else "."),
        "",
        "| benchmark | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for name, values in summary.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(metric)) for metric in metrics) + " |")
    return [*lines, "", _PAPER_REFERENCES[report["kind"]]]


def eval_section(report: dict | None) -> str:
    """The card's `## Evaluation` section (markdown) for a report; empty without one."""
    if not report:
        return ""
    lines = [_EVAL_START, "## Evaluation", ""]
    if _is_benchmark_report(report):
        lines += _benchmark_section(report)
    elif _is_opendesign_report(report):
        overall = report["overall"]
        lines += [
            f"OpenDesign-style evaluation with `recipes/aescoder_eval.py`: {overall.get('pages', 'n/a')} pages from "
            f"`{report.get('prompts', 'n/a')}`, judged by {report.get('judge', 'n/a')}. Every page is linted, rendered "
            "in headless Chromium and scored from its screenshot (static, /100); a GUI agent tries it (interactive, "
            "/3).",
            "",
            "| prompts | pages | " + " | ".join(label for _, label in _OPENDESIGN_COLUMNS) + " |",
            "|---|---|" + "---|" * len(_OPENDESIGN_COLUMNS),
        ]
        groups = [("**all**", overall), *sorted((report.get("by_category") or {}).items())]
        for name, summary in groups:
            cells = " | ".join(_fmt(summary.get(key)) for key, _ in _OPENDESIGN_COLUMNS)
            lines.append(f"| {name} | {_fmt(summary.get('pages'))} | {cells} |")
        lines += [
            "",
            "For reference, the paper reports static / interactive scores of 81.92 / 1.04 (AesCoder-4B) and 73.26 / "
            "0.67 (Qwen3-4B-Instruct-2507) on the 840 OpenDesign prompts with a GPT-5 judge; scores from another "
            "judge or prompt set are not comparable.",
        ]
    else:
        metrics = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    lines += ["", _EVAL_END]
    return "\n".join(lines)


def eval_results(report: dict | None, dataset_name: str = "trl_ext evaluation") -> list[EvalResult]:
    """The report as [`~huggingface_hub.EvalResult`]s (the card's `model-index`)."""
    if not report:
        return []
    if _is_benchmark_report(report):
        return _model_index_results(report)
    if _is_opendesign_report(report):
        prompts = str(report.get("prompts") or "opendesign")
        metrics = {label: report["overall"].get(key) for key, label in _OPENDESIGN_COLUMNS[:3]}
        dataset_name = f"OpenDesign-style prompts ({prompts})"
        dataset_type = prompts
    else:
        metrics = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        dataset_type = "custom"
    return [
        EvalResult(
            task_type="text-generation",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            metric_type=name,
            metric_name=name,
            metric_value=value,
        )
        for name, value in metrics.items()
        if value is not None
    ]


_EVAL_RESULT_FIELDS = {field.name for field in dataclasses.fields(EvalResult)}


def _model_index_results(report: dict) -> list[EvalResult]:
    entries = report.get("model_index")
    if not isinstance(entries, list):
        raise ValueError(
            f"Evaluation report of kind {report['kind']!r} has no `model_index` list (one dict of EvalResult fields "
            "per published number): write it with `python -m trl_ext.eval.code` / `trl_ext.eval.image`."
        )
    results = []
    for i, entry in enumerate(entries):
        unknown = set(entry) - _EVAL_RESULT_FIELDS if isinstance(entry, dict) else None
        if unknown is None or unknown:
            raise ValueError(
                f"`model_index[{i}]` of the evaluation report must be a dict of huggingface_hub.EvalResult fields; "
                f"got {entry!r}" + (f" (unknown fields {sorted(unknown)})" if unknown else "")
            )
        if entry.get("metric_value") is not None:
            results.append(EvalResult(**entry))
    return results


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------
def _unwrap(trainer):
    return trainer.accelerator.unwrap_model(trainer.model)


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _base_model(trainer) -> tuple[str, bool]:
    model = _unwrap(trainer)
    config = (model.get_base_model() if _is_peft(model) else model).config
    name = getattr(config, "_name_or_path", "") or ""
    # A local folder (a checkpoint, a test model) is not a Hub id: naming it as one renders "[None]"-style links.
    is_hub = bool(name) and not os.path.isdir(name) and name.count("/") == 1 and not name.startswith((".", "/"))
    return name, is_hub


def _license(base_model: str, base_is_hub: bool, explicit: str | None) -> tuple[str, str | None]:
    """(license id, how it was decided) for the card."""
    if explicit:
        if explicit not in HUB_LICENSES:
            raise ValueError(f"`license` must be one of the Hub's license ids (or 'other'), got {explicit!r}.")
        return explicit, None
    if base_is_hub:
        found = KNOWN_BASE_MODEL_LICENSES.get(base_model)
        if found is None:
            from huggingface_hub import constants, model_info

            if not constants.HF_HUB_OFFLINE:
                try:
                    card_data = model_info(base_model, timeout=10).card_data
                    found = card_data.get("license") if card_data is not None else None
                except Exception as e:  # a card must still be written when the Hub is unreachable
                    logger.info(f"Could not read the license of {base_model} from the Hub: {e}")
        if isinstance(found, str) and found in HUB_LICENSES:
            return found, f"inherited from the base model [{base_model}](https://huggingface.co/{base_model})"
    if not base_model:
        return "other", "the model was initialised in memory; pass `license=` to `create_model_card` to set one"
    return "other", (
        f"the license of the base model (`{base_model}`) could not be determined when this card was written; these "
        "weights are subject to it"
    )


def _loader(trainer, base_model: str) -> dict[str, Any]:
    """How the quickstart loads the weights: the auto class, remote code, and PEFT adapters."""
    model = _unwrap(trainer)
    peft = _is_peft(model)
    config = (model.get_base_model() if peft else model).config
    auto_map = getattr(config, "auto_map", None) or {}
    if getattr(config, "model_type", None) in NATIVE_MODEL_TYPES:
        auto_map = {}  # Dream/LLaDA: the native classes (registered by `import trl_ext`) serve it, no remote code
    # Remote-code models that register only `AutoModel` load with it; stock architectures load as causal LMs.
    auto_class = (
        "AutoModel" if "AutoModel" in auto_map and "AutoModelForCausalLM" not in auto_map else ("AutoModelForCausalLM")
    )
    return {"auto_class": auto_class, "trust_remote_code": bool(auto_map), "is_peft": peft, "base_model": base_model}


def _hardware(trainer) -> str:
    device = trainer.accelerator.device
    name = device.type.upper()
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
    return f"{trainer.accelerator.num_processes} x {name}"


def _training_results(log_history: list[dict], reward_names: list[str]) -> dict | None:
    logs = [entry for entry in log_history if "reward" in entry]
    if logs:  # GRPO-style trainers
        keys = [("reward", "reward (weighted sum)")]
        keys += [(f"rewards/{name}/mean", f"`{name}`") for name in reward_names]
        keys += [(k, k) for k in ("reward_std", "kl", "entropy", "completions/mean_length", "clip_ratio/region_mean")]
    else:  # trainers without rewards (SFT): the training loss and what TRL logs with it
        logs = [entry for entry in log_history if "loss" in entry]
        keys = [(k, k) for k in ("loss", "mean_token_accuracy", "entropy", "grad_norm")]
    if not logs:
        return None
    first, last = logs[0], logs[-1]
    rows = [(label, _fmt(first[key]), _fmt(last[key])) for key, label in keys if key in first and key in last]
    runtime = next((entry["train_runtime"] for entry in reversed(log_history) if "train_runtime" in entry), None)
    runtime = None if runtime is None else (f"{runtime / 3600:.1f} h" if runtime >= 3600 else f"{runtime:.0f} s")
    return {"first_step": first.get("step"), "last_step": last.get("step"), "rows": rows, "runtime": runtime}


def _training_results_markdown(results: dict | None) -> str:
    if not results or not results["rows"]:
        return ""
    if results["first_step"] == results["last_step"]:
        lines = [f"| metric | step {results['last_step']} |", "|---|---|"]
        lines += [f"| {name} | {last} |" for name, _, last in results["rows"]]
    else:
        lines = [f"| metric | step {results['first_step']} | step {results['last_step']} |", "|---|---|---|"]
        lines += [f"| {name} | {first} | {last} |" for name, first, last in results["rows"]]
    return "**Training results** (logged means: first and last logging step)\n\n" + "\n".join(lines)


def _training_config_markdown(config: str | None, command: str | None) -> str:
    if not config:
        return ""
    how = f": from a clone of trl_ext, `{command}`" if command else ""
    return (
        f"**Reproduce**{how} (`{TRAINING_CONFIG_NAME}` is in this repository).\n\n<details>\n"
        f"<summary>{TRAINING_CONFIG_NAME}</summary>\n\n```yaml\n{config.rstrip()}\n```\n\n</details>"
    )


def _common_hyperparameters(trainer) -> dict[str, Any]:
    args = trainer.args
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * trainer.accelerator.num_processes
    values = {
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "samples per optimizer step (all processes)": per_step,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": _plain(args.lr_scheduler_type),
        "warmup": args.warmup_steps or getattr(args, "warmup_ratio", None) or 0,
        "optimizer": _plain(args.optim),
        "weight_decay": args.weight_decay,
        "max_grad_norm": args.max_grad_norm,
        "precision": "bf16" if args.bf16 else ("fp16" if args.fp16 else "fp32"),
        "seed": args.seed,
    }
    num_generations = getattr(args, "num_generations", None)
    if num_generations:
        values["prompts per optimizer step"] = per_step // num_generations
    return values


def render_model_card(
    trainer,
    template: str,
    model_name: str | None = None,
    dataset_name: str | list[str] | None = None,
    tags: str | list[str] | None = None,
    hyperparameters: dict | None = None,
    *,
    license: str | None = None,
    pipeline_tag: str = "text-generation",
    library_name: str = "transformers",
    eval_report: str | os.PathLike | dict | bool | None = None,
    **extra,
) -> ModelCard:
    """
    Render `model_cards/<template>` for a trainer.

    Works for any trainer built on transformers' `Trainer` (GRPO or SFT): it reads `_paper` (`title`, `id`,
    `citation`) and `_tag_names` from the trainer class when present, `reward_func_names` / `reward_weights` when the
    trainer has rewards, and the log history for the training results.

    Args:
        trainer: The trainer.
        template (`str`): File name in `model_cards/`.
        model_name (`str`, *optional*): Defaults to the output folder's name.
        dataset_name (`str` or `list[str]`, *optional*): Hub dataset id(s) trained on (put in the metadata).
        tags (`str` or `list[str]`, *optional*): Extra tags.
        hyperparameters (`dict`, *optional*): Method-specific hyper-parameters, listed first; the optimisation ones
            (batch sizes, learning rate and schedule, optimizer, precision, seed) are added after them.
        license (`str`, *optional*): A Hub license id. Defaults to the base model's (known for the recipes' base
            models, else read from the Hub when reachable), else `"other"` with a note.
        pipeline_tag (`str`, *optional*, defaults to `"text-generation"`): The Hub task id.
        library_name (`str`, *optional*, defaults to `"transformers"`): The library that loads the weights.
        eval_report (`str`, `dict` or `bool`, *optional*): An evaluation report (see [`load_eval_report`]); by
            default `<output_dir>/eval/report.json` when it exists; `False` leaves evaluation out.
        **extra: More template variables.

    Template variables: `card_data`, `model_name`, `hub_model_id`, `base_model`, `base_model_is_hub`, `base_model_md`
    (a link, a local path or "built in memory"), `dataset_name`, `datasets`, `local_dataset`, `paper_title`, `paper_id`, `citation`, `trl_citation`, `trainer_class`, `global_step`,
    `num_processes`, `device_type`, `hardware`, `license`, `license_note`, `rewards` (`(name, weight)` pairs),
    `hyperparameters` (`(name, value)` pairs), `training_results` (and `training_results_md`), `loader`,
    `training_config`, `reproduce_command` (and `training_config_md`), `eval_section`, `wandb_url`, and the framework versions; plus `**extra`.
    """
    if pipeline_tag not in HUB_PIPELINE_TAGS:
        raise ValueError(f"`pipeline_tag` must be one of the Hub's task ids, got {pipeline_tag!r}.")
    base_model, base_is_hub = _base_model(trainer)
    args = trainer.args
    model_name = model_name or os.path.basename(os.path.normpath(args.output_dir))
    # The Hub id when the run pushes (or names one); otherwise the folder's absolute path, so that the quickstart runs
    # from any working directory on this machine.
    hub_model_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id or os.path.abspath(args.output_dir)
    paper = getattr(trainer, "_paper", None) or {}
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    tags = list(dict.fromkeys([*getattr(trainer, "_tag_names", []), *tags]))
    if paper.get("id"):
        tags.append(f"arxiv:{paper['id']}")
    datasets = [dataset_name] if isinstance(dataset_name, str) else list(dataset_name or [])
    license_id, license_note = _license(base_model, base_is_hub, license)

    if eval_report is None:
        default = os.path.join(args.output_dir, EVAL_REPORT_PATH)
        eval_report = default if os.path.isfile(default) else False
    report = load_eval_report(eval_report) if eval_report is not False else None
    results = eval_results(report)
    card_data = ModelCardData(
        base_model=base_model if base_is_hub else None,
        datasets=datasets or None,
        library_name=library_name,
        license=license_id,
        model_name=model_name,
        tags=list(dict.fromkeys(tags)),
        pipeline_tag=pipeline_tag,
        eval_results=results or None,
    )

    weights = getattr(trainer, "reward_weights", None)
    weights = weights.tolist() if hasattr(weights, "tolist") else list(weights or [])
    rewards = [(name, _fmt(float(w))) for name, w in zip(getattr(trainer, "reward_func_names", []), weights)]
    merged = dict(hyperparameters or {})
    for key, value in _common_hyperparameters(trainer).items():
        merged.setdefault(key, value)
    training_config, reproduce, config_values = _read_training_config(args.output_dir)
    training_results = _training_results(trainer.state.log_history, list(getattr(trainer, "reward_func_names", [])))

    wandb_url = None
    try:
        import wandb

        wandb_url = wandb.run.url if wandb.run is not None else None
    except ImportError:
        pass

    def package_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    template_path = importlib.resources.files("trl_ext.model_cards").joinpath(template)
    if not template_path.is_file():
        raise FileNotFoundError(f"No model-card template {template!r} in trl_ext.model_cards ({template_path}).")
    context = dict(
        model_name=model_name,
        hub_model_id=hub_model_id,
        base_model=base_model,
        base_model_is_hub=base_is_hub,
        base_model_md=(
            f"[{base_model}](https://huggingface.co/{base_model})"
            if base_is_hub
            else (f"`{base_model}`" if base_model else "a model built in memory (no saved base checkpoint)")
        ),
        dataset_name=datasets[0] if datasets else None,
        datasets=datasets,
        # A dataset that is not on the Hub (a bundled set, a local file) is named from the training configuration.
        local_dataset=None if datasets else config_values.get("dataset_name"),
        paper_title=paper.get("title"),
        paper_id=paper.get("id"),
        citation=paper.get("citation"),
        trl_citation=TRL_CITATION,
        trainer_class=type(trainer).__name__,
        global_step=trainer.state.global_step,
        num_processes=trainer.accelerator.num_processes,
        device_type=trainer.accelerator.device.type,
        hardware=_hardware(trainer),
        license=license_id,
        license_note=license_note,
        rewards=rewards,
        hyperparameters=[(key, _plain(value)) for key, value in merged.items() if value is not None],
        training_results=training_results,
        loader=_loader(trainer, base_model),
        training_results_md=_training_results_markdown(training_results),
        training_config=training_config,
        reproduce_command=reproduce,
        training_config_md=_training_config_markdown(training_config, reproduce),
        eval_section=eval_section(report),
        wandb_url=wandb_url,
        install_md=install_markdown(extra.pop("install_extras", ())),
        trl_ext_version=package_version("trl_ext"),
        trl_version=package_version("trl"),
        transformers_version=package_version("transformers"),
        pytorch_version=package_version("torch"),
    )
    context.update(extra)
    return ModelCard.from_template(card_data, template_path=str(template_path), **context)


PROJECT_URL = "https://github.com/trl-ext/trl_ext"


@functools.lru_cache(maxsize=1)
def _source_checkout() -> tuple[str | None, str | None]:
    """The source folder trl_ext is installed from (an editable install or a clone) and its git revision, if any
    (looked up once per process: every card write of a run names the same checkout)."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "pyproject.toml")):
        return None, None
    try:
        revision = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ""
    return root, revision or None


def install_command(extras: tuple[str, ...] | list[str] = (), local: bool = False) -> str:
    """
    The `pip` line that installs trl_ext (it is not on PyPI): from GitHub, or with `local=True` from the source
    folder this copy of trl_ext runs from (`None`-free: falls back to GitHub when it is not a source checkout).
    """
    spec = f"trl_ext[{','.join(extras)}]" if extras else "trl_ext"
    root, _ = _source_checkout()
    if local and root:
        return f'pip install "{root}{spec[len("trl_ext") :]}"'
    return f'pip install "{spec} @ git+{PROJECT_URL}"'


def install_markdown(extras: tuple[str, ...] | list[str] = ()) -> str:
    """The card's install line: GitHub, plus the source checkout (and revision) of the run that wrote it."""
    line = f"Install trl_ext (it is not on PyPI): `{install_command(extras)}`"
    root, revision = _source_checkout()
    if root:
        at = f" (trained at revision `{revision}`)" if revision else ""
        line += (
            f", or on the machine that trained this model, from its checkout{at}: `{install_command(extras, True)}`"
        )
    return line + "."


def write_model_card(trainer, template: str, **kwargs) -> ModelCard | None:
    """
    Render (see [`render_model_card`]), validate (see [`validate_model_card`]) and save `README.md` in
    `trainer.args.output_dir`, on the main process only. Returns the card (`None` on other processes).
    """
    if not trainer.is_world_process_zero():
        return None
    card = validate_model_card(render_model_card(trainer, template, **kwargs))
    os.makedirs(trainer.args.output_dir, exist_ok=True)
    card.save(os.path.join(trainer.args.output_dir, "README.md"))
    return card


def add_eval_report_to_card(readme_path: str, report: dict | str | os.PathLike) -> ModelCard:
    """
    Put an evaluation report into an existing card (as written by [`write_model_card`]): the `## Evaluation` section
    (replaced if there is one, else inserted before `## Training procedure`) and the `model-index` metadata.
    """
    report = load_eval_report(report)
    if not report:
        raise ValueError("The evaluation report is empty.")
    card = ModelCard.load(readme_path)
    section = eval_section(report)
    text = card.text
    if _EVAL_START in text and _EVAL_END in text:
        before, rest = text.split(_EVAL_START, 1)
        text = before + section + rest.split(_EVAL_END, 1)[1]
    elif "## Training procedure" in text:
        text = text.replace("## Training procedure", section + "\n\n## Training procedure", 1)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    data = card.data
    data.model_name = data.model_name or os.path.basename(os.path.dirname(os.path.abspath(readme_path)))
    data.eval_results = eval_results(report) or None
    new = validate_model_card(f"---\n{data.to_yaml()}\n---\n{text}")
    new.save(readme_path)
    return new


def push_eval_to_hub(
    model_dir: str | os.PathLike,
    repo_id: str,
    report: dict | str | os.PathLike | None = None,
    token: str | None = None,
    revision: str | None = None,
) -> str:
    """
    Add an evaluation report to `<model_dir>/README.md` (see [`add_eval_report_to_card`]) and push the card, with the
    report itself as `eval/report.json` (and `eval/report.md` when next to it), to the Hub repository `repo_id` in one
    commit. The Hub reads the card's `model-index` into the model page's evaluation results. Returns the commit URL.

    The results go through `huggingface_hub`'s card and commit API (what `evaluate.push_to_hub` also calls, one
    metric per commit); `evaluate` itself is not used.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    model_dir = os.fspath(model_dir)
    if report is None:
        report = os.path.join(model_dir, EVAL_REPORT_PATH)
        if not os.path.isfile(report):
            raise FileNotFoundError(
                f"No evaluation report at {report}: run `python -m trl_ext.eval.code` / `trl_ext.eval.image` "
                "with `--output_dir` set to the model folder, or pass `--report`."
            )
    readme = os.path.join(model_dir, "README.md")
    if not os.path.isfile(readme):
        raise FileNotFoundError(f"{readme} not found: the model folder has no model card to add the results to.")
    loaded = load_eval_report(report)
    card = add_eval_report_to_card(readme, loaded)
    operations = [
        CommitOperationAdd("README.md", card.content.encode("utf-8")),
        CommitOperationAdd(EVAL_REPORT_PATH.replace(os.sep, "/"), json.dumps(loaded, indent=2).encode("utf-8")),
    ]
    if isinstance(report, (str, os.PathLike)) and os.path.isfile(report):
        markdown = os.path.join(os.path.dirname(os.fspath(report)), "report.md")
        if os.path.isfile(markdown):
            operations.append(CommitOperationAdd("eval/report.md", markdown))
    commit = HfApi(token=token).create_commit(
        repo_id,
        operations,
        commit_message="Add evaluation results (trl_ext)",
        revision=revision,
    )
    return commit.commit_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trl_ext.model_card", description="Model-card utilities.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_eval = commands.add_parser("add-eval", help="Add an evaluation report to a saved model's README.md.")
    add_eval.add_argument("model_dir")
    add_eval.add_argument("--report", default=None, help=f"Defaults to <model_dir>/{EVAL_REPORT_PATH}.")
    add_eval.add_argument(
        "--push_to_hub",
        metavar="REPO_ID",
        default=None,
        help="Also push the updated card and the report (eval/report.json) to this Hub model repository.",
    )
    add_eval.add_argument("--revision", default=None, help="Branch to push to (with --push_to_hub).")
    check = commands.add_parser("validate", help="Validate a README.md's metadata offline.")
    check.add_argument("readme")
    args = parser.parse_args(argv)
    if args.command == "add-eval":
        readme = os.path.join(args.model_dir, "README.md")
        if args.push_to_hub:
            url = push_eval_to_hub(args.model_dir, args.push_to_hub, args.report, revision=args.revision)
            print(f"Updated {readme} and pushed it with the report: {url}")
        else:
            add_eval_report_to_card(readme, args.report or os.path.join(args.model_dir, EVAL_REPORT_PATH))
            print(f"Updated {readme}")
    else:
        validate_model_card(open(args.readme, encoding="utf-8").read())
        print(f"{args.readme}: metadata valid")


if __name__ == "__main__":
    main()
