"""
AesCode-358K for supervised fine-tuning: the SFT stage of AesCoder ([paper](https://huggingface.co/papers/2510.23272)).

AesCode-358K ([`SamuelBang/AesCode-358K`](https://huggingface.co/datasets/SamuelBang/AesCode-358K)) pairs instructions
with code whose *rendered result* looks good: 158K Python plotting scripts (instructions adapted from VisCode-200K,
code regenerated and checked to run) and 200K single-file web pages in five categories (website, 3D design, data
visualisation, game, UI component; the best of several generated pages, rendered and judged). [`load_aescode`] turns
it into the conversational format [`~trl.SFTTrainer`] takes: a `messages` column of system / user / assistant turns,
or `prompt` / `completion` for a completion-only loss with any chat template.

**Schema.** The dataset card on the Hub does not document its columns, and the Hub cannot be reached from where this
module was written, so the column names could not be checked against the real files. The loader therefore accepts
the layouts instruction datasets use, and says exactly what it found when a source matches none of them (see
[`AESCODE_SCHEMA`]):

- a `messages` column (a list of `{"role", "content"}` dicts whose last turn is the assistant's answer), or
- an instruction column (`prompt`, `instruction`, `query` or `question`) and a response column (`response`, `output`,
  `completion` or `answer`);
- optionally a `category` column: the webpage categories as OpenDesign (same authors) spells them (`Website`,
  `3D Design`, `Data Visualization`, `Game Dev`, `UI Component`, any case, `_` or `-` for spaces) and `Plot` (or
  `Python Plot`, `Python`) for the plotting half.

Name the columns explicitly (`instruction_column`, `response_column`, `category_column`) when a source uses others.
A row without a usable category is classified by its code: an HTML document or ```` ```html ```` block is a web page,
a ```` ```python ```` block or a plotting import a plot; rows that are neither are dropped and counted in a warning.

The 40-row `trl_ext/aescode_sample` bundled with the package ([`AESCODE_SAMPLE`]) is written in the
`id` / `category` / `prompt` / `response` layout: 24 small, valid pages (they pass the HTMLHint rules of
[`~trl_ext.web.lint.lint_html`] and load without JavaScript errors) and 16 matplotlib scripts that run, written for
trl_ext. It is what the tiny offline recipe trains on.

Example:

```python
>>> from trl_ext.data.aescode import AESCODE_SAMPLE, load_aescode
>>> dataset = load_aescode(AESCODE_SAMPLE, subset="web", categories=["game"])
>>> dataset.column_names, len(dataset)
(['messages', 'kind', 'category'], 4)
>>> [message["role"] for message in dataset[0]["messages"]]
['system', 'user', 'assistant']
>>> dataset[0]["messages"][2]["content"][:23]
'```html\\n<!DOCTYPE html>'

```
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from . import WEB_DESIGN_CATEGORIES, WEB_DESIGN_SYSTEM_PROMPT
from ._builder import HubDatasetBuilder, SchemaError, local_format

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

AESCODE_HUB_ID = "SamuelBang/AesCode-358K"
AESCODE_SAMPLE = "trl_ext/aescode_sample"
AESCODE_SAMPLE_FILE = "aescode_sample.jsonl"
SUBSETS = ("web", "plot", "both")
FORMATS = ("messages", "prompt_completion")

# The plot half asks for a script whose figure is judged; PandasPlotBench runs the code and renders the last figure.
PLOT_SYSTEM_PROMPT = (
    "You are an expert in data visualisation with Python. Answer with one complete, runnable script in a single "
    "```python code block: import what it uses (matplotlib, seaborn, plotly, pandas, numpy), build any data it needs, "
    "and draw one clear, well-labelled, good-looking figure."
)

INSTRUCTION_COLUMNS = ("prompt", "instruction", "query", "question")
RESPONSE_COLUMNS = ("response", "output", "completion", "answer")
CATEGORY_COLUMN = "category"

AESCODE_SCHEMA = (
    "one row per sample with either a `messages` column (a list of {'role', 'content'} dicts whose last turn is the "
    f"assistant's answer) or an instruction column (one of {list(INSTRUCTION_COLUMNS)}) and a response column (one "
    f"of {list(RESPONSE_COLUMNS)}); optionally a `category` column (webpages: 'Website', '3D Design', 'Data "
    "Visualization', 'Game Dev', 'UI Component'; plots: 'Plot')"
)

# Category spellings (lower-cased, `_`/`-` read as spaces) -> the keys of `trl_ext.data.WEB_DESIGN_CATEGORIES`.
_WEB_CATEGORY_NAMES = {
    "website": "website",
    "general website": "website",
    "web": "website",
    "3d": "3d",
    "3d design": "3d",
    "game": "game",
    "game dev": "game",
    "game development": "game",
    "ui": "ui_component",
    "ui component": "ui_component",
    "data visualization": "data_visualization",
    "data visualisation": "data_visualization",
    "data vis": "data_visualization",
    "dataviz": "data_visualization",
}
_PLOT_CATEGORY_NAMES = {"plot", "plots", "python plot", "python", "chart"}
_FENCE = re.compile(r"```")
_HTML_CODE = re.compile(r"```[ \t]*html\b|<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_PYTHON_CODE = re.compile(
    r"```[ \t]*(?:python|py)\b|^\s*(?:import|from)\s+(?:matplotlib|seaborn|plotly|pandas)\b", re.IGNORECASE | re.M
)


def normalize_category(value: Any) -> tuple[str, str] | None:
    """
    Map a category label of AesCode-358K to `(kind, category)`: `("web", <one of WEB_DESIGN_CATEGORIES>)` or
    `("plot", "plot")`; `None` when the label is missing or unknown.

    Example:

    ```python
    >>> normalize_category("Game Dev"), normalize_category("data_visualization"), normalize_category("Plot")
    (('web', 'game'), ('web', 'data_visualization'), ('plot', 'plot'))

    ```
    """
    if not isinstance(value, str):
        return None
    key = " ".join(value.replace("_", " ").replace("-", " ").lower().split())
    if key in _WEB_CATEGORY_NAMES:
        return "web", _WEB_CATEGORY_NAMES[key]
    if key in _PLOT_CATEGORY_NAMES:
        return "plot", "plot"
    return None


def classify_response(response: str) -> Literal["web", "plot"] | None:
    """The kind of code a response holds: `"web"` (HTML), `"plot"` (Python plotting) or `None`."""
    if _HTML_CODE.search(response):
        return "web"
    if _PYTHON_CODE.search(response):
        return "plot"
    return None


def _wrap(response: str, kind: str) -> str:
    # The GRPO stage extracts the last fenced block (`trl_ext.web.lint.extract_html`) and the system prompts ask for
    # one: bare code is fenced so that SFT teaches the same answer format. Fenced answers are left as they are.
    if _FENCE.search(response):
        return response
    language = "html" if kind == "web" else "python"
    return f"```{language}\n{response.strip()}\n```"


_TITLE = re.compile(r"<title[^>]*>([^<]*)</title>", re.IGNORECASE)
_H1 = re.compile(r"<h1[^>]*>([^<]+)</h1>", re.IGNORECASE)
_PARAGRAPH = re.compile(r"<p[^>]*>([^<]+)</p>", re.IGNORECASE)
_BODY_RULE = re.compile(r"(?:^|[}>\s])body\s*\{([^}]*)\}")


def outline_page(response: str, max_style_chars: int = 80) -> str:
    """
    A short, complete and lint-clean version of a webpage answer: its title, the `body` rule of its stylesheet (the
    first declarations that fit in `max_style_chars`), its first heading (or the title) and its first plain
    paragraph, in a fenced ```` ```html ```` block of about 250 characters.

    A curriculum for models too small to write a whole page (the `make demo` SFT stage): the tiny model learns what a
    complete page looks like, and GRPO can then reward the pages that close every tag. Answers without a `<title>`
    are returned unchanged.

    Example:

    ```python
    >>> from trl_ext.data.aescode import outline_page
    >>> page = "```html\\n<!DOCTYPE html><html><head><title>Hi</title><style>body{margin:0;color:#111}</style></head>"
    >>> outline = outline_page(page + "<body><h1>Hello</h1><p>Welcome.</p><div>...</div></body></html>\\n```")
    >>> print(*outline.splitlines()[1:-1], sep="\\n")  # inside its ```html fence
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <title>Hi</title>
    <style>body{margin:0;color:#111}</style>
    </head>
    <body>
    <h1>Hello</h1>
    <p>Welcome.</p>
    </body>
    </html>
    ```
    """
    title = _TITLE.search(response)
    if title is None or not title.group(1).strip():
        return response
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", f"<title>{title.group(1).strip()}</title>"]
    body = _BODY_RULE.search(response)
    if body is not None:
        kept = ""
        for declaration in filter(None, (d.strip() for d in body.group(1).split(";"))):
            if len(kept) + len(declaration) + 1 > max_style_chars:
                break
            kept = f"{kept};{declaration}" if kept else declaration
        if kept:
            lines.append(f"<style>body{{{kept}}}</style>")
    heading = _H1.search(response)
    lines += ["</head>", "<body>", f"<h1>{(heading.group(1) if heading else title.group(1)).strip()}</h1>"]
    paragraph = _PARAGRAPH.search(response)
    if paragraph is not None and paragraph.group(1).strip():
        lines.append(f"<p>{paragraph.group(1).strip()}</p>")
    lines += ["</body>", "</html>"]
    return "```html\n" + "\n".join(lines) + "\n```"


OUTLINE_FAULTS = ("attr-value-double-quotes", "tagname-lowercase", "tag-pair")


def fault_outline(outline: str, which: int) -> str:
    """
    A copy of an [`outline_page`] with one of the faults HTMLHint's default rules catch most often in generated pages,
    [`OUTLINE_FAULTS`]`[which % 3]`: the `lang` attribute in single quotes, the heading's tags in upper case, or the
    heading left unclosed. Everything else is unchanged, so the clean and the faulty copy differ in a few characters.

    Example:

    ```python
    >>> from trl_ext.data.aescode import fault_outline
    >>> outline = '<!DOCTYPE html>\\n<html lang="en">\\n<head>\\n<title>Hi</title>\\n</head>\\n<body>\\n<h1>Hi</h1>\\n</body>\\n</html>'
    >>> [fault_outline(outline, which).split("\\n")[i] for which, i in ((0, 1), (1, 6), (2, 6))]
    ["<html lang='en'>", '<H1>Hi</H1>', '<h1>Hi']
    ```
    """
    fault = OUTLINE_FAULTS[which % len(OUTLINE_FAULTS)]
    if fault == "attr-value-double-quotes":
        return outline.replace('<html lang="en">', "<html lang='en'>", 1)
    if fault == "tagname-lowercase":
        return re.sub(r"<h1>(.*?)</h1>", r"<H1>\1</H1>", outline, count=1)
    return re.sub(r"<h1>(.*?)</h1>", r"<h1>\1", outline, count=1)


def _check_messages(messages: Any, index: int) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"Row {index}: `messages` must be a non-empty list of {{'role', 'content'}} dicts.")
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(
                f"Row {index}: every entry of `messages` must be a dict with 'role' and 'content', got {message!r:.200}."
            )
    turns = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
    if not turns or turns[-1]["role"] != "assistant" or not any(t["role"] == "user" for t in turns):
        roles = [m["role"] for m in messages]
        raise ValueError(
            f"Row {index}: `messages` needs a user turn and must end with the assistant's answer, got roles {roles}."
        )
    return turns


def _resolve_columns(
    columns: Sequence[str],
    instruction_column: str | None,
    response_column: str | None,
    category_column: str | None,
) -> tuple[str | None, str | None, str | None]:
    """Return `(instruction, response, category)` column names (`instruction` is `None` for `messages` rows)."""
    found = f"Columns found: {list(columns)}. Expected {AESCODE_SCHEMA}."
    for name, value in (
        ("instruction_column", instruction_column),
        ("response_column", response_column),
        ("category_column", category_column),
    ):
        if value is not None and value not in columns:
            raise SchemaError(f"`{name}={value!r}` is not a column of the dataset. {found}")
    if category_column is None and CATEGORY_COLUMN in columns:
        category_column = CATEGORY_COLUMN
    if instruction_column is None and response_column is None and "messages" in columns:
        return None, None, category_column
    instruction = instruction_column or next((c for c in INSTRUCTION_COLUMNS if c in columns), None)
    response = response_column or next((c for c in RESPONSE_COLUMNS if c in columns), None)
    if instruction is None or response is None:
        missing = "instruction" if instruction is None else "response"
        raise SchemaError(
            f"The dataset has no {missing} column (looked for "
            f"{list(INSTRUCTION_COLUMNS if instruction is None else RESPONSE_COLUMNS)} and `messages`). {found} "
            f"Pass `{missing}_column=` to name it."
        )
    return instruction, response, category_column


def _load_source(source, split: str, name: str | None, data_files, revision: str | None):
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    if isinstance(source, Dataset):
        return source
    if isinstance(source, DatasetDict):
        return _pick_split(source, split)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"`source` must be a Hub id, a local path or a `datasets.Dataset`, got {type(source).__name__}."
        )
    source = os.fspath(source)
    if source == AESCODE_SAMPLE:
        text = resources.files(__package__).joinpath(AESCODE_SAMPLE_FILE).read_text(encoding="utf-8")
        return Dataset.from_list([json.loads(line) for line in text.splitlines() if line.strip()])
    path = os.path.expanduser(source)
    if os.path.isfile(path):
        builder = local_format(path)
        if builder is None:
            raise ValueError(
                f"Cannot read {source!r}: use a .parquet, .jsonl, .json, .csv or .arrow file, or a folder."
            )
        return load_dataset(builder, data_files=path, split="train")
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, marker)) for marker in ("dataset_info.json", "dataset_dict.json")):
            loaded = load_from_disk(path)
            return _pick_split(loaded, split) if isinstance(loaded, DatasetDict) else loaded
        return load_dataset(path, name=name, data_files=data_files, split=split)
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{source!r} is neither a local file or folder nor a Hub dataset id ('owner/name').")
    return load_dataset(source, name=name, data_files=data_files, split=split, revision=revision)


def _pick_split(dataset_dict, split: str):
    if split not in dataset_dict:
        raise ValueError(f"Split {split!r} not found; the dataset has {list(dataset_dict)}. Pass `split=`.")
    return dataset_dict[split]


def load_aescode(
    source: Any = AESCODE_HUB_ID,
    subset: Literal["web", "plot", "both"] = "both",
    categories: Iterable[str] | None = None,
    max_rows: int | None = None,
    web_system_prompt: str | None = WEB_DESIGN_SYSTEM_PROMPT,
    plot_system_prompt: str | None = PLOT_SYSTEM_PROMPT,
    conversation_format: Literal["messages", "prompt_completion"] = "messages",
    wrap_code: bool = True,
    outline_pages: bool = False,
    outline_faults: bool = False,
    seed: int | None = None,
    split: str = "train",
    name: str | None = None,
    revision: str | None = None,
    data_files: str | Sequence[str] | dict | None = None,
    instruction_column: str | None = None,
    response_column: str | None = None,
    category_column: str | None = None,
    num_proc: int | None = None,
) -> Dataset:
    """
    Load AesCode-358K (or a copy, or any dataset in its format) as a conversational SFT dataset.

    Args:
        source (`str` or `datasets.Dataset`, *optional*, defaults to `"SamuelBang/AesCode-358K"`):
            A Hub dataset id; a local `.parquet` / `.jsonl` / `.json` / `.csv` / `.arrow` file; a folder of such files
            or one written by `save_to_disk`; [`AESCODE_SAMPLE`] for the 40 bundled rows; or a `Dataset` /
            `DatasetDict` already in memory.
        subset (`str`, *optional*, defaults to `"both"`):
            `"web"` (webpages), `"plot"` (Python plotting scripts) or `"both"`.
        categories (`Iterable[str]`, *optional*):
            Keep only these categories: any of `trl_ext.data.WEB_DESIGN_CATEGORIES` (`"website"`, `"3d"`, `"game"`,
            `"ui_component"`, `"data_visualization"`) and `"plot"` for the plotting scripts.
        max_rows (`int`, *optional*):
            Keep at most this many rows, after filtering (the first ones, or a random draw with `seed`).
        web_system_prompt (`str`, *optional*, defaults to `trl_ext.data.WEB_DESIGN_SYSTEM_PROMPT`):
            System message of webpage rows (the one the bundled GRPO prompts use); `None` for none.
        plot_system_prompt (`str`, *optional*, defaults to [`PLOT_SYSTEM_PROMPT`]):
            System message of plot rows; `None` for none. System messages found in the source are replaced.
        conversation_format (`str`, *optional*, defaults to `"messages"`):
            `"messages"`: one `messages` column. `"prompt_completion"`: `prompt` (system + user turns) and
            `completion` (the assistant turn), so that [`~trl.SFTTrainer`] trains on the answer only, whatever the
            chat template.
        wrap_code (`bool`, *optional*, defaults to `True`):
            Put an answer that has no code fence into a ```` ```html ```` / ```` ```python ```` block, the format
            the system prompts ask for and the GRPO stage extracts.
        outline_pages (`bool`, *optional*, defaults to `False`):
            Replace each webpage answer by its [`outline_page`] (about 250 characters, lint-clean): a curriculum for
            models too small to write whole pages (`make demo`).
        outline_faults (`bool`, *optional*, defaults to `False`):
            With `outline_pages`, add after each webpage row a copy whose outline carries one common HTMLHint fault
            ([`fault_outline`]: a single-quoted attribute, an upper-case tag or an unclosed heading, by turns). A model
            trained on both writes a faulty page about half the time, which the lint gate of the GRPO stage then
            teaches it to avoid.
        seed (`int`, *optional*):
            Shuffle with this seed before taking `max_rows` (the Hub files may be grouped by category, so the first
            rows need not be representative).
        split (`str`, *optional*, defaults to `"train"`):
            Split to load from the Hub, a folder or a `DatasetDict`.
        name (`str`, *optional*):
            Dataset configuration on the Hub.
        revision (`str`, *optional*):
            Git revision of a Hub dataset (pin it for reproducible runs).
        data_files (`str`, `list` or `dict`, *optional*):
            Passed to `datasets.load_dataset` for a Hub id or a folder (e.g. only some files).
        instruction_column, response_column, category_column (`str`, *optional*):
            Column names, when the source does not use the ones of [`AESCODE_SCHEMA`].
        num_proc (`int`, *optional*):
            Processes used to format the rows.

    Returns:
        `datasets.Dataset`: Columns `messages` (or `prompt` and `completion`), `kind` (`"web"` or `"plot"`) and
        `category` (a `WEB_DESIGN_CATEGORIES` key, `"other"` for a webpage of an unknown category, or `"plot"`).

    Raises:
        `SchemaError` (a `ValueError`): when the source has none of the expected columns (naming the columns found and
        the expected schema), or when a named column does not exist.
    """
    return _load_and_count(
        source=source,
        subset=subset,
        categories=categories,
        max_rows=max_rows,
        web_system_prompt=web_system_prompt,
        plot_system_prompt=plot_system_prompt,
        conversation_format=conversation_format,
        wrap_code=wrap_code,
        outline_pages=outline_pages,
        outline_faults=outline_faults,
        seed=seed,
        split=split,
        name=name,
        revision=revision,
        data_files=data_files,
        instruction_column=instruction_column,
        response_column=response_column,
        category_column=category_column,
        num_proc=num_proc,
    )[0]


def _load_and_count(
    source,
    subset,
    categories,
    max_rows,
    web_system_prompt,
    plot_system_prompt,
    conversation_format,
    wrap_code,
    seed,
    split,
    name,
    revision,
    data_files,
    instruction_column,
    response_column,
    category_column,
    num_proc,
    outline_pages=False,
    outline_faults=False,
) -> tuple[Dataset, dict[str, int]]:
    """[`load_aescode`], and the number of rows after each step (for the dataset card of the builder)."""
    if subset not in SUBSETS:
        raise ValueError(f"`subset` must be one of {list(SUBSETS)}, got {subset!r}.")
    if outline_faults and not outline_pages:
        raise ValueError("`outline_faults=True` adds faulty copies of the outlines: it needs `outline_pages=True`.")
    if conversation_format not in FORMATS:
        raise ValueError(f"`conversation_format` must be one of {list(FORMATS)}, got {conversation_format!r}.")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"`max_rows` must be a positive int or None, got {max_rows!r}.")
    if categories is not None:
        categories = {categories} if isinstance(categories, str) else set(categories)
        unknown = sorted(categories - {*WEB_DESIGN_CATEGORIES, "plot"})
        if unknown:
            raise ValueError(
                f"Unknown `categories` {unknown}; choose from {[*WEB_DESIGN_CATEGORIES, 'plot']} (`'plot'` keeps the "
                "plotting scripts)."
            )

    dataset = _load_source(source, split, name, data_files, revision)
    instruction, response, category = _resolve_columns(
        dataset.column_names, instruction_column, response_column, category_column
    )
    counts = {"source rows": len(dataset)}
    if max_rows is not None and seed is None and subset == "both" and categories is None:
        # Nothing is filtered out: format only the rows that are kept (a few rows of a 358K-row dataset).
        dataset = dataset.select(range(min(max_rows, len(dataset))))
        counts["rows read (max_rows, source order)"] = len(dataset)
    system_prompts = {"web": web_system_prompt, "plot": plot_system_prompt}

    def format_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out = {"turns": [], "kind": [], "category": []}
        for row, index in enumerate(indices):
            if instruction is None:
                turns = _check_messages(batch["messages"][row], index)
            else:
                user, answer = batch[instruction][row], batch[response][row]
                if not isinstance(user, str) or not isinstance(answer, str):
                    raise SchemaError(
                        f"Row {index}: `{instruction}` and `{response}` must be strings, got "
                        f"{type(user).__name__} and {type(answer).__name__}. Expected {AESCODE_SCHEMA}."
                    )
                turns = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            resolved = normalize_category(batch[category][row]) if category is not None else None
            if resolved is None:
                kind = classify_response(turns[-1]["content"])
                resolved = (kind, "other" if kind == "web" else kind) if kind is not None else ("unknown", "unknown")
            kind, label = resolved
            variants = [turns]
            if outline_pages and kind == "web":
                outline = outline_page(turns[-1]["content"])
                variants = [[*turns[:-1], {"role": "assistant", "content": outline}]]
                if outline_faults and outline != turns[-1]["content"]:
                    faulty = fault_outline(outline, index)
                    variants.append([*turns[:-1], {"role": "assistant", "content": faulty}])
            for variant in variants:
                if wrap_code and kind in system_prompts:
                    variant[-1] = {"role": "assistant", "content": _wrap(variant[-1]["content"], kind)}
                system = system_prompts.get(kind)
                if system is not None:
                    variant.insert(0, {"role": "system", "content": system})
                out["turns"].append(variant)
                out["kind"].append(kind)
                out["category"].append(label)
        return out

    dataset = dataset.map(
        format_batch,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Formatting AesCode rows",
    )
    kinds, labels = dataset["kind"], dataset["category"]
    unknown = kinds.count("unknown")
    counts["neither webpage nor plot (dropped)"] = unknown
    if unknown == len(dataset):
        raise SchemaError(
            f"None of the {len(dataset)} rows is recognisable as a webpage or a plot: the category is missing or "
            f"unknown and the answer holds no HTML or Python plotting code. Expected {AESCODE_SCHEMA}. Pass "
            "`category_column=` if the category is in another column."
        )
    if unknown:
        logger.warning("Dropped %d of %d rows that are neither a webpage nor a plot.", unknown, len(dataset))
    keep_kinds = {"web", "plot"} if subset == "both" else {subset}
    keep_subset = [i for i, kind in enumerate(kinds) if kind in keep_kinds]
    counts[f"other than subset={subset!r} (dropped)"] = len(dataset) - unknown - len(keep_subset)
    keep = [i for i in keep_subset if categories is None or labels[i] in categories]
    counts["other categories (dropped)"] = len(keep_subset) - len(keep)
    if not keep:
        raise ValueError(
            f"No row left after filtering (subset={subset!r}, categories={sorted(categories) if categories else None});"
            f" the source has {dict(Counter(labels))}."
        )
    if len(keep) < len(dataset):
        dataset = dataset.select(keep)
    if seed is not None:
        dataset = dataset.shuffle(seed=seed)
    if max_rows is not None and len(dataset) > max_rows:
        dataset = dataset.select(range(max_rows))
    for label, count in sorted(Counter(dataset["category"]).items()):
        counts[f"category {label}"] = count
    counts["rows"] = len(dataset)
    if conversation_format == "messages":
        dataset = dataset.rename_column("turns", "messages")
        return dataset.select_columns(["messages", "kind", "category"]), counts
    dataset = dataset.map(
        lambda row: {"prompt": row["turns"][:-1], "completion": row["turns"][-1:]},
        remove_columns=["turns"],
        desc="Splitting prompt and completion",
    )
    return dataset.select_columns(["prompt", "completion", "kind", "category"]), counts


# --------------------------------------------------------------------------------------------------------------------
# Builder (CLI): python -m trl_ext.data.aescode --output_dir data/aescode-sft
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class AesCodeSFTArguments:
    """
    Parameters of [`AesCodeSFTBuilder`] (those of [`load_aescode`]).

    Args:
        source (`str`, *optional*, defaults to `"SamuelBang/AesCode-358K"`):
            Hub id, local copy (`.parquet`, `.jsonl`, a folder, a `save_to_disk` folder) or `trl_ext/aescode_sample`.
        source_config (`str`, *optional*):
            Configuration of the Hub dataset.
        source_split (`str`, *optional*, defaults to `"train"`):
            Split to read.
        source_revision (`str`, *optional*):
            Git revision of the Hub dataset.
        subset (`str`, *optional*, defaults to `"both"`):
            `"web"`, `"plot"` or `"both"`.
        categories (`list[str]`, *optional*):
            Keep only these categories (`website`, `3d`, `game`, `ui_component`, `data_visualization`, `plot`).
        max_rows (`int`, *optional*):
            Keep at most this many rows (a random draw with `seed`).
        seed (`int`, *optional*):
            Shuffle seed; `None` keeps the source order.
        conversation_format (`str`, *optional*, defaults to `"messages"`):
            `"messages"` or `"prompt_completion"`.
        wrap_code (`bool`, *optional*, defaults to `True`):
            Fence answers that have no code block.
        web_system_prompt (`str`, *optional*, defaults to `WEB_DESIGN_SYSTEM_PROMPT`):
            System message of webpage rows; an empty string for none.
        plot_system_prompt (`str`, *optional*, defaults to `PLOT_SYSTEM_PROMPT`):
            System message of plot rows; an empty string for none.
        instruction_column, response_column, category_column (`str`, *optional*):
            Column names, when the source does not use the expected ones.
        num_proc (`int`, *optional*):
            Processes used to format the rows.
    """

    source: str = field(default=AESCODE_HUB_ID, metadata={"help": "Hub id or local copy of AesCode-358K."})
    source_config: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    source_split: str = field(default="train", metadata={"help": "Split to read."})
    source_revision: str | None = field(default=None, metadata={"help": "Git revision of the Hub dataset."})
    subset: str = field(default="both", metadata={"help": "'web', 'plot' or 'both'.", "choices": SUBSETS})
    categories: list[str] | None = field(
        default=None,
        metadata={"help": "Keep only these categories (website, 3d, game, ui_component, data_visualization, plot)."},
    )
    max_rows: int | None = field(default=None, metadata={"help": "Keep at most this many rows."})
    seed: int | None = field(default=None, metadata={"help": "Shuffle seed (None keeps the source order)."})
    conversation_format: str = field(
        default="messages", metadata={"help": "'messages' or 'prompt_completion'.", "choices": FORMATS}
    )
    wrap_code: bool = field(default=True, metadata={"help": "Fence answers that have no code block."})
    web_system_prompt: str = field(
        default=WEB_DESIGN_SYSTEM_PROMPT, metadata={"help": "System message of webpage rows ('' for none)."}
    )
    plot_system_prompt: str = field(
        default=PLOT_SYSTEM_PROMPT, metadata={"help": "System message of plot rows ('' for none)."}
    )
    instruction_column: str | None = field(default=None, metadata={"help": "Column of the user requests."})
    response_column: str | None = field(default=None, metadata={"help": "Column of the answers."})
    category_column: str | None = field(default=None, metadata={"help": "Column of the categories."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes used to format the rows."})


# As the authors cite it (github.com/bangx7/code_aesthetics); every AesCoder card and dataset card uses this entry.
AESCODER_CITATION = """@misc{xiao2025codeaestheticsagenticreward,
  title         = {Code Aesthetics with Agentic Reward Feedback},
  author        = {Bang Xiao and Lingjie Jiang and Shaohan Huang and Tengchao Lv and Yupan Huang and Xun Wu and Lei Cui and Furu Wei},
  year          = {2025},
  eprint        = {2510.23272},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CL},
  url           = {https://arxiv.org/abs/2510.23272}
}"""


class AesCodeSFTBuilder(HubDatasetBuilder):
    """
    Build the SFT set of AesCoder from AesCode-358K with [`load_aescode`], save it with a dataset card, and optionally
    push it to the Hub:

    ```bash
    python -m trl_ext.data.aescode --output_dir data/aescode-sft                                   # all 358K rows
    python -m trl_ext.data.aescode --output_dir data/aescode-web-20k --subset web --max_rows 20000 --seed 42
    python -m trl_ext.data.aescode --output_dir data/aescode-sft --push_to_hub --hub_dataset_id ORG/aescode-sft
    ```
    """

    arguments_class = AesCodeSFTArguments
    module = "trl_ext.data.aescode"
    pretty_name = "AesCode-358K for SFT (AesCoder)"
    # The AesCode-358K card declares no license.
    license = "other"
    task_categories = ["text-generation"]
    tags = ["code", "html", "web-design", "data-visualization", "sft", "aescoder"]
    citations = [AESCODER_CITATION]

    def build(self) -> Dataset:
        args = self.args
        dataset, self.counts = _load_and_count(
            source=args.source,
            subset=args.subset,
            categories=args.categories,
            max_rows=args.max_rows,
            web_system_prompt=args.web_system_prompt or None,
            plot_system_prompt=args.plot_system_prompt or None,
            conversation_format=args.conversation_format,
            wrap_code=args.wrap_code,
            seed=args.seed,
            split=args.source_split,
            name=args.source_config,
            revision=args.source_revision,
            data_files=None,
            instruction_column=args.instruction_column,
            response_column=args.response_column,
            category_column=args.category_column,
            num_proc=args.num_proc,
        )
        self.parameters = {
            "source": args.source,
            "source_config": args.source_config,
            "source_split": args.source_split,
            "source_revision": args.source_revision,
            "subset": args.subset,
            "categories": args.categories or "all",
            "max_rows": args.max_rows,
            "seed": args.seed,
            "conversation_format": args.conversation_format,
            "wrap_code": args.wrap_code,
            "web_system_prompt": args.web_system_prompt or None,
            "plot_system_prompt": args.plot_system_prompt or None,
        }
        return dataset

    def summary(self) -> str:
        return (
            "Instruction-tuning data for code aesthetics, from [AesCode-358K](https://huggingface.co/datasets/"
            f"{AESCODE_HUB_ID}) (single-file web pages in five categories and Python plotting scripts), formatted for "
            "TRL's `SFTTrainer` as chat conversations: the SFT stage of "
            "[AesCoder](https://huggingface.co/papers/2510.23272)."
        )

    def method(self) -> str:
        args = self.args
        return (
            "1. Read the instruction and answer of each row (or its `messages`) and its category; a row without a "
            "known category is classified by its code (HTML document or ```` ```html ```` block: webpage; "
            "```` ```python ```` block or plotting import: plot); rows that are neither are dropped.\n"
            f"2. Keep subset `{args.subset}` and categories {args.categories or 'all'}"
            + (f"; at most {args.max_rows} rows" if args.max_rows else "")
            + (f", drawn with seed {args.seed}." if args.seed is not None else ", in source order.")
            + "\n3. "
            + ("Fence answers that have no code block; " if args.wrap_code else "")
            + "add the system message of the row's kind (webpage: trl_ext's `WEB_DESIGN_SYSTEM_PROMPT`, the one of "
            "the GRPO prompts; plot: `PLOT_SYSTEM_PROMPT`), replacing any in the source.\n"
            + (
                "4. Split into `prompt` (system + user) and `completion` (assistant)."
                if args.conversation_format == "prompt_completion"
                else "4. One `messages` column (system, user, assistant)."
            )
        )

    def column_descriptions(self) -> dict[str, str]:
        return {
            "messages": "Chat turns: system, user request, assistant answer (code in one fenced block).",
            "prompt": "Chat turns given to the model: system, user request.",
            "completion": "The assistant's answer (code in one fenced block).",
            "kind": "`web` or `plot`.",
            "category": "website, 3d, game, ui_component, data_visualization (webpages; `other` if unknown) or plot.",
        }

    def source_datasets(self) -> list[str]:
        source = self.args.source
        is_hub_id = source != AESCODE_SAMPLE and source.count("/") == 1 and not os.path.exists(source)
        return [source] if is_hub_id else []

    def usage(self) -> str:
        return (
            "Fine-tune with `recipes/aescoder_sft.py`, then run the RL stage from the result:\n\n```bash\n"
            "accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/aescoder_sft.py \\\n"
            "    --config recipes/configs/aescoder_sft_paper.yaml --dataset_name ORG/NAME\n```"
        )

    def license_note(self) -> str:
        return (
            f"Derived from [{AESCODE_HUB_ID}](https://huggingface.co/datasets/{AESCODE_HUB_ID}) (Xiao et al., 2025), "
            "whose card declares no license: check the terms with its authors before redistributing. The answers "
            "were generated by LLMs (the paper names GPT-5 and Qwen3-Coder-480B-A35B-Instruct)."
        )


def build_aescode_sft(**kwargs) -> Dataset:
    """Build the AesCoder SFT set; `kwargs` are the fields of [`AesCodeSFTArguments`]."""
    return AesCodeSFTBuilder(AesCodeSFTArguments(**kwargs)).build()


if __name__ == "__main__":
    AesCodeSFTBuilder.main()
