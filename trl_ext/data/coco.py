"""
COCO caption prompts for text-to-image AR-GRPO (LlamaGen t2i).

AR-GRPO trains its t2i model on 30K COCO captions. This builder samples them from either:

- the official COCO annotations, a local `captions_train2017.json` / `captions_val2014.json` file
  (`{"images": [...], "annotations": [{"id", "image_id", "caption"}, ...]}`), or
- any captions dataset (a Hub id or local parquet/jsonl/csv) with a caption column holding a string, a list of
  strings, or Karpathy-style `{"raw": ...}` records (auto-detected among `caption`, `captions`, `sentences`,
  `sentences_raw`, `answer`, `Prompt`, `text`, or set with `caption_column`), and optionally an image-id column.

Selection, deterministic for a seed: captions are cleaned (whitespace collapsed), filtered by word count, and
deduplicated (case, spacing and a final period ignored; the first occurrence in source order is kept); with
`one_per_image` (default) one caption is drawn per image; the pool is shuffled and the first `num_captions` kept.
The columns are `prompt` (what `ARImageGRPOTrainer` conditions on), `caption` (the default `--caption_column` of
`recipes/ar_grpo_t2i.py`, and the text `trl_ext.rewards.image` scores against) and `image_id`.

```bash
python -m trl_ext.data.coco --source annotations/captions_train2017.json --output_dir data/coco-30k
python -m trl_ext.data.coco --source ORG/coco-captions --caption_column caption --num_captions 30000 --output_dir out
```
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._builder import HubDatasetBuilder, SchemaError, SourceArguments, check_positive, iter_source_rows

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

CAPTION_COLUMNS = ("caption", "captions", "sentences", "sentences_raw", "answer", "Prompt", "text")
IMAGE_ID_COLUMNS = ("image_id", "cocoid", "imgid", "id")
COCO_SCHEMA = """\
  official annotations (captions_*.json):
    {"images": [{"id": int, "file_name": str, ...}],
     "annotations": [{"id": int, "image_id": int, "caption": str}, ...]}
  or a table with a caption column (string, list of strings, or records with a "raw"/"caption" field):
    caption | captions | sentences | sentences_raw | answer | Prompt | text
  and optionally an image id column: image_id | cocoid | imgid | id"""

CITATIONS = [
    """@article{yuan2025argrpo,
  title   = {{AR-GRPO: Training Autoregressive Image Generation Models via Reinforcement Learning}},
  author  = {Shihao Yuan and Yahui Liu and Yang Yue and Jingyuan Zhang and Wangmeng Zuo and Qi Wang and Fuzheng Zhang and Guorui Zhou},
  journal = {arXiv preprint arXiv:2508.06924},
  year    = {2025}
}""",
    """@inproceedings{lin2014coco,
  title     = {{Microsoft COCO: Common Objects in Context}},
  author    = {Tsung-Yi Lin and Michael Maire and Serge Belongie and James Hays and Pietro Perona and Deva Ramanan and Piotr Doll{\\'a}r and C. Lawrence Zitnick},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2014}
}""",
]


def clean_caption(caption: str) -> str:
    """Collapse whitespace (COCO captions carry stray spaces and newlines)."""
    return " ".join(caption.split())


def caption_key(caption: str) -> str:
    """Deduplication key: lowercase, single spaces, no final period."""
    return " ".join(caption.lower().split()).rstrip(" .")


def _caption_values(value: Any) -> list[str]:
    """The captions in one cell: a string, a list of strings, or records with a `raw`/`caption` field."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        for key in ("raw", "caption", "text"):
            if key in value:
                return _caption_values(value[key])
        return []
    if isinstance(value, list | tuple):
        return [caption for item in value for caption in _caption_values(item)]
    raise TypeError(f"unsupported caption value of type {type(value).__name__}")


@dataclass
class COCOCaptionsArguments(SourceArguments):
    """
    Parameters of [`COCOCaptionsBuilder`].

    Args:
        source (`str`):
            Official annotations file (`captions_train2017.json`), or a Hub id / local table of captions.
        caption_column (`str`, *optional*):
            Caption column of a table (auto-detected when unset).
        image_id_column (`str`, *optional*):
            Image-id column of a table (auto-detected; the row index otherwise).
        num_captions (`int`, *optional*, defaults to `30000`):
            Captions to keep (AR-GRPO: 30K); `None` for all.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the per-image draw and of the shuffle.
        one_per_image (`bool`, *optional*, defaults to `True`):
            At most one caption per image.
        dedup (`bool`, *optional*, defaults to `True`):
            Drop repeated captions (case, spacing and a final period ignored).
        min_words (`int`, *optional*, defaults to `1`):
            Drop captions with fewer words.
        max_words (`int`, *optional*):
            Drop captions with more words (LlamaGen's T5 reads 120 tokens).
    """

    source: str | None = field(
        default=None, metadata={"help": "captions_*.json (official COCO format), or a Hub id / local table."}
    )
    caption_column: str | None = field(default=None, metadata={"help": "Caption column of a table (auto)."})
    image_id_column: str | None = field(default=None, metadata={"help": "Image-id column of a table (auto)."})
    num_captions: int | None = field(default=30_000, metadata={"help": "Captions to keep (AR-GRPO: 30K)."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-image draw and the shuffle."})
    one_per_image: bool = field(default=True, metadata={"help": "At most one caption per image."})
    dedup: bool = field(default=True, metadata={"help": "Drop repeated captions."})
    min_words: int = field(default=1, metadata={"help": "Drop captions with fewer words."})
    max_words: int | None = field(default=None, metadata={"help": "Drop captions with more words."})

    def __post_init__(self):
        check_positive("num_captions", self.num_captions)
        check_positive("min_words", self.min_words, allow_none=False, allow_zero=True)
        check_positive("max_words", self.max_words)
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"`max_words` ({self.max_words}) must be >= `min_words` ({self.min_words}).")


class COCOCaptionsBuilder(HubDatasetBuilder):
    """
    Build the COCO caption-prompt set for t2i AR-GRPO (see the module docstring).

    Example:

    ```python
    >>> from trl_ext.data.coco import COCOCaptionsBuilder
    >>> dataset = COCOCaptionsBuilder(source="annotations/captions_train2017.json").build()  # doctest: +SKIP
    ```
    """

    arguments_class = COCOCaptionsArguments
    module = "trl_ext.data.coco"
    pretty_name = "COCO caption prompts (AR-GRPO t2i)"
    license = "cc-by-4.0"
    task_categories = ["text-to-image"]
    tags = ["image-generation", "text-to-image", "reinforcement-learning", "grpo", "ar-grpo", "coco"]
    citations = CITATIONS

    def _is_official_annotations(self) -> bool:
        path = Path(self.args.source).expanduser()
        if not (path.is_file() and path.name.lower().endswith(".json")):
            return False
        # The official files are one JSON object, not JSON lines.
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096).lstrip()
        return head.startswith("{") and any(
            f'"{key}"' in head for key in ("annotations", "images", "info", "licenses")
        )

    def _official_captions(self) -> list[tuple[int, str]]:
        path = Path(self.args.source).expanduser()
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
            raise SchemaError(f"{self.args.source!r} has no `annotations` list. Expected:\n{COCO_SCHEMA}")
        captions = []
        for index, annotation in enumerate(data["annotations"]):
            if not isinstance(annotation, dict) or "image_id" not in annotation or "caption" not in annotation:
                keys = sorted(annotation) if isinstance(annotation, dict) else type(annotation).__name__
                raise SchemaError(
                    f"Annotation {index} of {self.args.source!r} lacks `image_id` or `caption` (it has {keys}); "
                    f"this is not a COCO captions file (instances_*.json has no captions). Expected:\n{COCO_SCHEMA}"
                )
            if not isinstance(annotation["caption"], str):
                raise SchemaError(f"`caption` of annotation {index} of {self.args.source!r} is not a string.")
            captions.append((int(annotation["image_id"]), annotation["caption"]))
        return captions

    def _table_captions(self) -> list[tuple[int, str]]:
        args = self.args
        caption_candidates = [args.caption_column] if args.caption_column else list(CAPTION_COLUMNS)
        id_candidates = [args.image_id_column] if args.image_id_column else list(IMAGE_ID_COLUMNS)
        rows = iter_source_rows(
            args.source,
            required_columns=[c for c in (args.caption_column, args.image_id_column) if c],
            expected_schema=COCO_SCHEMA,
            config=args.source_config,
            split=args.source_split,
            revision=args.source_revision,
            streaming=args.streaming,
            columns=list(dict.fromkeys(caption_candidates + id_candidates)),
        )
        captions, caption_column, id_column = [], None, None
        for index, row in enumerate(rows):
            if index == 0:
                caption_column = next((c for c in caption_candidates if c in row), None)
                if caption_column is None:
                    raise SchemaError(
                        f"No caption column in {args.source!r} (looked for {caption_candidates}); set "
                        f"`caption_column`. Expected:\n{COCO_SCHEMA}"
                    )
                id_column = next((c for c in id_candidates if c in row), None)
                self.parameters["caption_column"] = caption_column
                self.parameters["image_id_column"] = id_column or "(row index)"
            try:
                values = _caption_values(row[caption_column])
            except TypeError as error:
                raise SchemaError(
                    f"`{caption_column}` of row {index} of {args.source!r}: {error}. Expected:\n{COCO_SCHEMA}"
                ) from error
            image_id = row.get(id_column) if id_column else None
            try:
                image_id = int(image_id) if image_id is not None else index
            except (TypeError, ValueError):
                image_id = index
            captions.extend((image_id, caption) for caption in values)
        return captions

    def build(self) -> Dataset:
        from datasets import Dataset, Features, Value

        args = self.args
        if not args.source:
            raise ValueError(
                "Set `source`: a COCO captions annotations file (captions_train2017.json) or a captions dataset."
            )
        self.parameters = {"source": args.source}
        official = self._is_official_annotations()
        if official:
            self.parameters["format"] = "official COCO annotations"
            captions = self._official_captions()
        else:
            self.parameters.update(source_config=args.source_config, source_revision=args.source_revision)
            captions = self._table_captions()

        too_short = too_long = duplicates = 0
        seen: set[str] = set()
        per_image: dict[int, list[str]] = {}
        for image_id, raw in captions:
            caption = clean_caption(raw)
            words = len(caption.split())
            if not caption or words < args.min_words:
                too_short += 1
                continue
            if args.max_words is not None and words > args.max_words:
                too_long += 1
                continue
            key = caption_key(caption)
            if args.dedup and key in seen:
                duplicates += 1
                continue
            seen.add(key)
            per_image.setdefault(image_id, []).append(caption)

        rng = random.Random(args.seed)
        if args.one_per_image:
            pool = [(image_id, rng.choice(options)) for image_id, options in per_image.items()]
        else:
            pool = [(image_id, caption) for image_id, options in per_image.items() for caption in options]
        rng.shuffle(pool)
        selected = pool if args.num_captions is None else pool[: args.num_captions]
        if args.num_captions is not None and len(selected) < args.num_captions:
            logger.warning(
                "Only %d eligible captions in %r (asked for %d).", len(selected), args.source, args.num_captions
            )

        self.parameters.update(
            num_captions=args.num_captions,
            seed=args.seed,
            one_per_image=args.one_per_image,
            dedup=args.dedup,
            min_words=args.min_words,
            max_words=args.max_words,
        )
        self.counts = {
            "source captions": len(captions),
            f"fewer than {args.min_words} words (dropped)": too_short,
            f"more than {args.max_words} words (dropped)": too_long,
            "duplicates (dropped)": duplicates,
            "images with an eligible caption": len(per_image),
            "candidate captions" + (" (one per image)" if args.one_per_image else ""): len(pool),
            "rows": len(selected),
        }
        features = Features({"prompt": Value("string"), "caption": Value("string"), "image_id": Value("int64")})
        return Dataset.from_dict(
            {
                "prompt": [caption for _, caption in selected],
                "caption": [caption for _, caption in selected],
                "image_id": [image_id for image_id, _ in selected],
            },
            features=features,
        )

    # Card --------------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        return (
            "COCO captions as text prompts for text-to-image [AR-GRPO](https://huggingface.co/papers/2508.06924) "
            "(LlamaGen t2i, trained on 30K COCO captions). No image is included."
        )

    def method(self) -> str:
        args = self.args
        return (
            "1. Read every caption with its image id"
            + (" from the official COCO annotations file." if self.parameters.get("format") else " from the table.")
            + f"\n2. Collapse whitespace; keep captions of {args.min_words} to "
            + (f"{args.max_words}" if args.max_words is not None else "any number of")
            + " words"
            + (
                "; drop repeats (case, spacing and a final period ignored; first occurrence kept)"
                if args.dedup
                else ""
            )
            + ".\n3. "
            + ("Draw one caption per image, then shuffle" if args.one_per_image else "Shuffle all captions")
            + f" with `random.Random({args.seed})` and keep the first "
            + (f"{args.num_captions}." if args.num_captions is not None else "all.")
        )

    def column_descriptions(self) -> dict[str, str]:
        return {
            "prompt": "The caption, as the generator's text condition.",
            "caption": "The same caption (the column `recipes/ar_grpo_t2i.py` and the image rewards read).",
            "image_id": "COCO image id (the source row index when the source has none).",
        }

    def source_datasets(self) -> list[str]:
        source = self.args.source
        if source is None or self.parameters.get("format") or Path(source).expanduser().exists():
            return ["coco-captions"]
        return [source]

    def usage(self) -> str:
        return (
            "Train with `recipes/ar_grpo_t2i.py` (its default `--caption_column caption` reads this set):\n\n"
            "```bash\naccelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml --num_processes 4 "
            "recipes/ar_grpo_t2i.py \\\n    --config recipes/configs/ar_grpo_t2i_xl256.yaml --dataset_name ORG/NAME "
            "--caption_column caption\n```"
        )

    def license_note(self) -> str:
        return (
            "Captions from the [COCO](https://cocodataset.org) annotations (CC BY 4.0, COCO Consortium). Only "
            "captions and image ids are included, no image."
        )


def build_coco_captions(**kwargs) -> Dataset:
    """Build the COCO caption-prompt set; `kwargs` are the fields of [`COCOCaptionsArguments`]."""
    return COCOCaptionsBuilder(COCOCaptionsArguments(**kwargs)).build()


if __name__ == "__main__":
    COCOCaptionsBuilder.main()
