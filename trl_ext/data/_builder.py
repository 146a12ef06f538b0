"""
Shared machinery of the Hub-ready dataset builders in `trl_ext.data` (`acecode`, `websight`, `imagenet`, `coco`).

A builder turns an upstream dataset (a Hub id, or a local copy in the exact upstream format) into the prompt set a
recipe trains on, and records what it did (the parameters and the row counts after each step). Every builder is:

- a Python API: `SomeBuilder(SomeArguments(...)).build()` (or the module's `build_*` function) returns a
  `datasets.Dataset`;
- a CLI in TRL's style (`TrlParser`, so `--config build.yaml` works too):

  ```bash
  python -m trl_ext.data.acecode --output_dir data/acecode-hard [--push_to_hub --hub_dataset_id ORG/NAME]
  ```

  which saves the dataset with `save_to_disk` and writes a dataset card (`README.md`, rendered with
  `huggingface_hub.DatasetCard`: license, task categories, tags, source datasets, size category, the parameters and
  resulting counts, how to load it, citations) alongside, and with `--push_to_hub` uploads the card and then the
  dataset (`Dataset.push_to_hub`, which keeps the card's text and adds its `dataset_info`/`configs` metadata).

Heavy imports (`datasets`, `huggingface_hub`) happen inside the functions, so importing `trl_ext.data` stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from huggingface_hub import DatasetCard

logger = logging.getLogger(__name__)

TRL_URL = "https://github.com/huggingface/trl"

# Local files are read with the `datasets` packaged builder matching their extension.
_LOCAL_FORMATS = {
    ".json": "json",
    ".jsonl": "json",
    ".json.gz": "json",
    ".jsonl.gz": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".arrow": "arrow",
}


class SchemaError(ValueError):
    """The source does not have the upstream schema a builder expects."""


# --------------------------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class HubDatasetArguments:
    """
    Where a built dataset goes: a local folder (dataset + card) and optionally a Hub dataset repository.

    Args:
        output_dir (`str`):
            Folder the dataset is saved to (`save_to_disk`), with its card as `README.md`.
        push_to_hub (`bool`, *optional*, defaults to `False`):
            Also upload the card and the dataset (parquet) to `hub_dataset_id`.
        hub_dataset_id (`str`, *optional*):
            Dataset repository (`ORG/NAME`) to push to.
        hub_private (`bool`, *optional*):
            Create the repository private (when it does not exist yet).
        hub_token (`str`, *optional*):
            Token for the Hub; defaults to the `HF_TOKEN` environment variable or the cached login.
    """

    output_dir: str | None = field(default=None, metadata={"help": "Folder to save the dataset and its card to."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the dataset and its card to the Hub."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Dataset repository to push to (ORG/NAME)."})
    hub_private: bool | None = field(default=None, metadata={"help": "Create the repository private."})
    hub_token: str | None = field(
        default=None, metadata={"help": "Hub token; defaults to HF_TOKEN or the cached login."}
    )

    def __post_init__(self):
        if self.push_to_hub and not self.hub_dataset_id:
            raise ValueError("`push_to_hub=True` needs `hub_dataset_id` (the dataset repository, ORG/NAME).")
        if self.hub_dataset_id is not None and self.hub_dataset_id.count("/") != 1:
            raise ValueError(f"`hub_dataset_id` must look like ORG/NAME, got {self.hub_dataset_id!r}.")


@dataclass
class SourceArguments:
    """
    Where the upstream data comes from (fields shared by the builders that read a source dataset).

    Args:
        source (`str`, *optional*):
            A Hub dataset id, or a local copy in the exact upstream format: a `.parquet`/`.json`/`.jsonl`/`.csv` file,
            a folder of such files, or a folder written by `save_to_disk`.
        source_config (`str`, *optional*):
            Configuration (subset) of a Hub dataset.
        source_split (`str`, *optional*, defaults to `"train"`):
            Split to read.
        source_revision (`str`, *optional*):
            Git revision of a Hub dataset (pin it for reproducible builds).
        streaming (`bool`, *optional*, defaults to `True`):
            Read the source as a stream (one pass, nothing cached on disk) instead of downloading and preparing it.
    """

    source: str | None = field(default=None, metadata={"help": "Hub dataset id or local path (upstream format)."})
    source_config: str | None = field(default=None, metadata={"help": "Configuration (subset) of the source."})
    source_split: str = field(default="train", metadata={"help": "Split of the source to read."})
    source_revision: str | None = field(default=None, metadata={"help": "Git revision of a Hub source."})
    streaming: bool = field(default=True, metadata={"help": "Stream the source instead of downloading it."})


def check_percentage(name: str, value: float | None, *, allow_none: bool = False) -> None:
    """Raise a `ValueError` naming `name` unless `value` is a number in [0, 100]."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError(f"`{name}` must be a percentile in [0, 100], got {value!r}.")


def check_positive(name: str, value: int | None, *, allow_none: bool = True, allow_zero: bool = False) -> None:
    """Raise a `ValueError` naming `name` unless `value` is a positive (or non-negative) integer."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"`{name}` must be an integer {bound}, got {value!r}.")


# --------------------------------------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------------------------------------


def local_format(path: str | os.PathLike) -> str | None:
    """The `datasets` packaged builder for a local data file, from its extension (`None` if unknown)."""
    name = os.fspath(path).lower()
    for suffix in sorted(_LOCAL_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return _LOCAL_FORMATS[suffix]
    return None


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or local_format(source) is not None or source.count("/") > 1


def check_columns(present: Iterable[str], required: Sequence[str], *, source: str, expected_schema: str) -> None:
    """
    Raise a [`SchemaError`] naming the missing columns, the columns the source has, and the expected schema.
    """
    present = list(present)
    missing = [column for column in required if column not in present]
    if missing:
        raise SchemaError(
            f"The source {source!r} has no column(s) {missing} (its columns: {present}). This builder expects the "
            f"upstream schema:\n{expected_schema}\nPoint `source` at the upstream dataset or a local copy in its "
            "exact format."
        )


def iter_source_rows(
    source: str,
    *,
    required_columns: Sequence[str],
    expected_schema: str,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    streaming: bool = True,
    columns: Sequence[str] | None = None,
    shuffle_seed: int | None = None,
    shuffle_buffer_size: int = 10_000,
) -> Iterator[dict[str, Any]]:
    """
    Rows (dicts) of a source dataset, restricted to `columns` and checked for `required_columns` before the first row.

    Parquet sources (local files, and Hub datasets whose builder takes `columns`, which most Hub datasets do) read only
    `columns` from disk or the network, so large columns the builder does not use (WebSight's screenshots, AceCode's
    `context_messages`) are never downloaded nor decoded.

    Args:
        source (`str`):
            Hub dataset id, local data file, folder of data files, or `save_to_disk` folder.
        required_columns (`Sequence[str]`):
            Columns that must exist; a [`SchemaError`] names the missing ones and `expected_schema` otherwise.
        expected_schema (`str`):
            Human-readable upstream schema, for the error message.
        config, split, revision, streaming:
            As in `datasets.load_dataset`.
        columns (`Sequence[str]`, *optional*):
            Columns to read (defaults to `required_columns`); optional ones absent from the source are skipped.
        shuffle_seed (`int`, *optional*):
            Shuffle the rows with this seed first (a buffer of `shuffle_buffer_size` rows when streaming).
        shuffle_buffer_size (`int`, *optional*, defaults to `10000`):
            Shuffle buffer of streamed sources.
    """
    dataset, names = _load_source(
        source,
        config=config,
        split=split,
        revision=revision,
        streaming=streaming,
        columns=list(columns) if columns is not None else list(required_columns),
        required_columns=required_columns,
        expected_schema=expected_schema,
    )
    if shuffle_seed is not None:
        if streaming:
            dataset = dataset.shuffle(seed=shuffle_seed, buffer_size=shuffle_buffer_size)
        else:
            dataset = dataset.shuffle(seed=shuffle_seed)
    wanted = list(columns) if columns is not None else list(required_columns)
    checked = names is not None
    for row in dataset:
        if not checked:
            check_columns(row.keys(), required_columns, source=source, expected_schema=expected_schema)
            checked = True
        yield {key: row[key] for key in wanted if key in row}


def _load_source(
    source: str,
    *,
    config: str | None,
    split: str,
    revision: str | None,
    streaming: bool,
    columns: list[str],
    required_columns: Sequence[str],
    expected_schema: str,
) -> tuple[Dataset | IterableDataset, list[str] | None]:
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(source).expanduser()
    check = dict(required=required_columns, source=source, expected_schema=expected_schema)

    if path.is_dir() and any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json")):
        dataset = load_from_disk(str(path))
        if isinstance(dataset, DatasetDict):
            if split not in dataset:
                raise ValueError(
                    f"{source!r} has no split {split!r} (its splits: {list(dataset)}); set `source_split`."
                )
            dataset = dataset[split]
        check_columns(dataset.column_names, **check)
        dataset = dataset.select_columns([c for c in columns if c in dataset.column_names])
        return (dataset.to_iterable_dataset() if streaming else dataset), dataset.column_names

    if path.exists():
        data_files = str(path) if path.is_file() else None
        builder = local_format(path) if path.is_file() else None
        kwargs: dict[str, Any] = {}
        if path.is_file() and builder is None:
            raise ValueError(
                f"Cannot read {source!r}: unknown file type (supported: {sorted(_LOCAL_FORMATS)}, or a folder)."
            )
        # A parquet file, or a folder of parquet files only (a downloaded Hub dataset): check the schema from the
        # footer and read only the needed columns.
        parquet_files = [path] if builder == "parquet" else []
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and local_format(p) is not None)
            if files and all(local_format(p) == "parquet" for p in files):
                parquet_files = files
        if parquet_files:
            import pyarrow.parquet as pq

            names = pq.read_schema(str(parquet_files[0])).names
            check_columns(names, **check)
            kwargs["columns"] = [c for c in columns if c in names]
        if builder == "csv" and str(path).lower().endswith(".tsv"):
            kwargs["sep"] = "\t"
        if path.is_file():
            dataset = load_dataset(builder, data_files=data_files, split="train", streaming=streaming, **kwargs)
        else:
            dataset = load_dataset(str(path), split=split, streaming=streaming, **kwargs)
        return _restrict(dataset, columns, check)

    if _looks_like_path(source):
        raise FileNotFoundError(f"No such file or folder: {source!r} (for a Hub dataset, pass its ORG/NAME id).")

    # A Hub dataset: read the declared features first, so a wrong schema fails before anything is downloaded, and
    # pass `columns` to builders that accept it (parquet), so unused columns are never fetched.
    from datasets import load_dataset_builder

    builder = load_dataset_builder(source, config, revision=revision)
    features = builder.info.features
    kwargs = {}
    if features is not None:
        check_columns(features, **check)
        if "columns" in {f.name for f in dataclasses.fields(builder.config)}:
            kwargs["columns"] = [c for c in columns if c in features]
    dataset = load_dataset(source, config, split=split, revision=revision, streaming=streaming, **kwargs)
    return _restrict(dataset, columns, check)


def _restrict(dataset, columns: list[str], check: dict) -> tuple[Any, list[str] | None]:
    names = dataset.column_names
    if names is None:
        # Streamed JSON/CSV: the columns are known from the first row (checked by the caller).
        return dataset, None
    check_columns(names, **check)
    keep = [c for c in columns if c in names]
    if keep != list(names):
        dataset = dataset.select_columns(keep)
    return dataset, keep


# --------------------------------------------------------------------------------------------------------------------
# Dataset cards
# --------------------------------------------------------------------------------------------------------------------


def size_category(num_rows: int) -> str:
    """The Hub's `size_categories` tag for a number of rows."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ]
    for bound, name in bounds:
        if num_rows < bound:
            return name
    return "n>1B"


def _feature_type(feature) -> str:
    from datasets import LargeList, List, Value
    from datasets import Sequence as SequenceFeature

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List | LargeList | SequenceFeature):
        return f"list[{_feature_type(feature.feature)}]"
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k}: {_feature_type(v)}" for k, v in feature.items()) + "}"
    if isinstance(feature, list) and feature:
        return f"list[{_feature_type(feature[0])}]"
    return type(feature).__name__


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "-"
    if value is None:
        return "-"
    text = str(value).replace("|", "\\|").replace("\n", "\\n")
    return text if len(text) <= 200 else text[:197] + "..."


CARD_TEMPLATE = """\
---
{{ card_data }}
---

# {{ pretty_name }}

{{ summary }}

Built with `python -m {{ module }}` from `trl_ext`, an extension of [TRL]({{ trl_url }}).

## Contents

{% for split, rows in splits -%}
- `{{ split }}`: {{ rows }} rows
{% endfor %}
| column | type | description |
|---|---|---|
{% for name, dtype, description in columns -%}
| `{{ name }}` | `{{ dtype }}` | {{ description }} |
{% endfor %}
## How it was built

{{ method }}

Reproduce it with:

```bash
{{ command }}
```

### Parameters

| parameter | value |
|---|---|
{% for name, value in parameters -%}
| `{{ name }}` | {{ value }} |
{% endfor %}
### Counts

| step | rows |
|---|---|
{% for name, value in counts -%}
| {{ name }} | {{ value }} |
{% endfor %}
## Usage

```python
{{ load_snippet }}
```

{{ usage }}

## Source and license

{{ license_note }}

## Citation

{% for citation in citations -%}
```bibtex
{{ citation }}
```

{% endfor %}"""


# --------------------------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------------------------


class HubDatasetBuilder:
    """
    Base class of the dataset builders: build a `datasets.Dataset`, then describe, save and publish it.

    Subclasses set the class attributes, implement [`~HubDatasetBuilder.build`] (which fills `self.parameters` with
    the effective parameters and `self.counts` with the rows left after each step) and the card text methods.

    Args:
        args (dataclass, *optional*):
            An instance of `arguments_class`; built from `kwargs` when omitted.
        **kwargs:
            Fields of `arguments_class`.
    """

    arguments_class: ClassVar[type]
    module: ClassVar[str]
    pretty_name: ClassVar[str]
    license: ClassVar[str]
    task_categories: ClassVar[list[str]]
    tags: ClassVar[list[str]]
    citations: ClassVar[list[str]] = []
    language: ClassVar[list[str]] = ["en"]

    def __init__(self, args=None, **kwargs):
        if args is not None and kwargs:
            raise ValueError("Pass either an arguments dataclass or keyword arguments, not both.")
        self.args = args if args is not None else self.arguments_class(**kwargs)
        if not isinstance(self.args, self.arguments_class):
            raise TypeError(f"`args` must be a {self.arguments_class.__name__}, got {type(self.args).__name__}.")
        self.parameters: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    # To implement ------------------------------------------------------------------------------------------------

    def build(self) -> Dataset:
        """Build and return the dataset (and fill `self.parameters` and `self.counts`)."""
        raise NotImplementedError

    def summary(self) -> str:
        """One paragraph: what the dataset is and what it is for."""
        raise NotImplementedError

    def method(self) -> str:
        """Markdown: how the rows were selected and formatted."""
        raise NotImplementedError

    def column_descriptions(self) -> dict[str, str]:
        """Description of each output column."""
        return {}

    def source_datasets(self) -> list[str]:
        """The upstream datasets (Hub ids or names) the card lists."""
        return []

    def usage(self) -> str:
        """Markdown after the loading snippet (e.g. the recipe command)."""
        return ""

    def license_note(self) -> str:
        """Markdown: where the data comes from and under which terms."""
        return f"License: `{self.license}`."

    # Provided ----------------------------------------------------------------------------------------------------

    def command(self) -> str:
        """The CLI command that rebuilds this dataset (arguments that differ from the defaults)."""
        defaults = self.arguments_class()
        parts = ["python", "-m", self.module, "--output_dir", "OUTPUT_DIR"]
        for f in dataclasses.fields(self.args):
            value = getattr(self.args, f.name)
            if value == getattr(defaults, f.name):
                continue
            if isinstance(value, bool):
                parts += [f"--{f.name}", str(value)]
            elif isinstance(value, list | tuple):
                parts += [f"--{f.name}", *map(str, value)]
            elif value is not None:
                parts += [f"--{f.name}", str(value)]
        return shlex.join(parts)

    def card(
        self, dataset: Dataset, repo_id: str | None = None, local_path: str | os.PathLike | None = None
    ) -> DatasetCard:
        """
        The dataset card: Hub metadata (license, task categories, tags, source datasets, size category, pretty name)
        and a body with the columns, the method, the parameters and counts, how to load it, and citations.

        Args:
            dataset (`datasets.Dataset` or `datasets.DatasetDict`):
                The built dataset.
            repo_id (`str`, *optional*):
                The Hub repository, for the loading snippet; without it the snippet loads `local_path`.
            local_path (`str` or `os.PathLike`, *optional*):
                The folder the dataset is saved to.
        """
        from datasets import DatasetDict
        from huggingface_hub import DatasetCard, DatasetCardData

        splits = list(dataset.items()) if isinstance(dataset, DatasetDict) else [("train", dataset)]
        total = sum(len(part) for _, part in splits)
        features = splits[0][1].features
        descriptions = self.column_descriptions()
        columns = [(name, _feature_type(feature), descriptions.get(name, "")) for name, feature in features.items()]
        card_data = DatasetCardData(
            language=list(self.language),
            license=self.license,
            task_categories=list(self.task_categories),
            tags=sorted({"trl", "trl_ext", *self.tags}),
            source_datasets=self.source_datasets() or None,
            size_categories=[size_category(total)],
            pretty_name=self.pretty_name,
        )
        if repo_id is not None:
            load_snippet = f'from datasets import load_dataset\n\ndataset = load_dataset("{repo_id}", split="train")'
        else:
            path = os.fspath(local_path) if local_path is not None else "OUTPUT_DIR"
            load_snippet = f"from datasets import load_from_disk\n\ndataset = load_from_disk({path!r})"
        return DatasetCard.from_template(
            card_data,
            template_str=CARD_TEMPLATE,
            pretty_name=self.pretty_name,
            summary=self.summary(),
            module=self.module,
            trl_url=TRL_URL,
            splits=[(name, len(part)) for name, part in splits],
            columns=columns,
            method=self.method(),
            command=self.command(),
            parameters=[(name, _format_value(value)) for name, value in self.parameters.items()],
            counts=[(name, value) for name, value in self.counts.items()],
            load_snippet=load_snippet,
            usage=self.usage(),
            license_note=self.license_note(),
            citations=list(self.citations),
        )

    def save(self, dataset: Dataset, output_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
        """Save `dataset` to `output_dir` (`save_to_disk`) with its card as `output_dir/README.md`."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        dataset.save_to_disk(str(output_dir))
        card = self.card(dataset, repo_id=repo_id, local_path=output_dir)
        (output_dir / "README.md").write_text(str(card), encoding="utf-8")
        return output_dir

    def push_to_hub(
        self,
        dataset: Dataset,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        card: DatasetCard | None = None,
    ) -> str:
        """
        Upload the card, then the dataset, to the dataset repository `repo_id` (created if needed).

        The card goes first so that `Dataset.push_to_hub` finds it and only adds its `dataset_info` and `configs`
        metadata, keeping the text. Returns the repository URL.
        """
        from huggingface_hub import HfApi

        card = card if card is not None else self.card(dataset, repo_id=repo_id)
        api = HfApi(token=token)
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_file(
            path_or_fileobj=str(card).encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type="dataset",
            commit_message="Add dataset card",
        )
        dataset.push_to_hub(repo_id, token=token, commit_message=f"Upload dataset built with {self.module}")
        return str(url)

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> Dataset:
        """Command-line entry point: parse the arguments, build, save with the card, optionally push."""
        from trl import TrlParser

        parser = TrlParser((cls.arguments_class, HubDatasetArguments))
        args, hub_args = parser.parse_args_and_config(args=[str(a) for a in argv] if argv is not None else None)
        if hub_args.output_dir is None:
            parser.error("the following arguments are required: --output_dir")
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        builder = cls(args)
        dataset = builder.build()
        repo_id = hub_args.hub_dataset_id if hub_args.push_to_hub else None
        path = builder.save(dataset, hub_args.output_dir, repo_id=repo_id)
        print(f"Saved {len(dataset)} rows and the dataset card to {path}")
        for name, value in builder.counts.items():
            print(f"  {name}: {value}")
        if hub_args.push_to_hub:
            url = builder.push_to_hub(dataset, repo_id, private=hub_args.hub_private, token=hub_args.hub_token)
            print(f"Pushed to {url}")
        return dataset
