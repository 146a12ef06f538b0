"""
ImageNet-1k class prompts for class-to-image AR-GRPO (LlamaGen c2i).

AR-GRPO trains its c2i models on the ImageNet classes: each row is a class label the generator is conditioned on and
the text "a photo of {class}" the CLIP/HPS rewards score the image against. The 1000 names come from metadata that
ships with installed packages (nothing is downloaded), in one of three styles:

- `"lemmas"` (default, as AR-GRPO and `trl_ext.rewards.image`): the WordNet lemma lists of the classes, e.g.
  "tench, Tinca tinca", from `timm`'s ImageNet metadata (`timm` comes with `open_clip_torch`, the `image` extra);
- `"torchvision"`: the short names of torchvision's weights metadata
  (`ResNet50_Weights.IMAGENET1K_V2.meta["categories"]`), e.g. "tench", "crane" (twice in WordNet, once here);
- `"clean"`: the disambiguated names of CLIP's zero-shot evaluation, from `open_clip`.

The columns are the ones `ARImageGRPOTrainer` reads for c2i generators: `class_label` (int) and `prompt`; plus
`class_name`, which `trl_ext.rewards.image` puts in its template when present (so choose the style the rewards
should see).

```bash
python -m trl_ext.data.imagenet --output_dir data/imagenet-prompts                      # 1000 rows, one per class
python -m trl_ext.data.imagenet --output_dir data/imagenet-prompts --num_rows 10000 --seed 0   # classes cycled
```
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._builder import HubDatasetBuilder, check_positive

if TYPE_CHECKING:
    from datasets import Dataset

NAME_STYLES = ("lemmas", "torchvision", "clean")
DEFAULT_TEMPLATE = "a photo of {}"
NUM_IMAGENET_CLASSES = 1000

CITATIONS = [
    """@article{yuan2025argrpo,
  title   = {{AR-GRPO: Training Autoregressive Image Generation Models via Reinforcement Learning}},
  author  = {Shihao Yuan and Yahui Liu and Yang Yue and Jingyuan Zhang and Wangmeng Zuo and Qi Wang and Fuzheng Zhang and Guorui Zhou},
  journal = {arXiv preprint arXiv:2508.06924},
  year    = {2025}
}""",
    """@inproceedings{deng2009imagenet,
  title     = {{ImageNet: A Large-Scale Hierarchical Image Database}},
  author    = {Jia Deng and Wei Dong and Richard Socher and Li-Jia Li and Kai Li and Li Fei-Fei},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2009}
}""",
]


def imagenet_class_names(style: str = "lemmas") -> list[str]:
    """
    The 1000 ImageNet-1k class names by class index, from installed packages' metadata (works offline).

    Args:
        style (`str`, *optional*, defaults to `"lemmas"`):
            `"lemmas"` (timm's WordNet lemma lists, as AR-GRPO), `"torchvision"` (torchvision weights metadata) or
            `"clean"` (open_clip's zero-shot names).
    """
    if style == "lemmas":
        try:
            from timm.data import ImageNetInfo
        except ImportError as error:
            raise ImportError(
                "names='lemmas' reads timm's ImageNet metadata: `pip install timm` (it comes with open_clip_torch, "
                "the `image` extra: `pip install 'trl_ext[image] @ git+https://github.com/trl-ext/trl_ext'`), or use names='torchvision'."
            ) from error
        info = ImageNetInfo()
        names = [info.index_to_description(i) for i in range(info.num_classes())]
    elif style == "torchvision":
        from torchvision.models import ResNet50_Weights

        names = list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    elif style == "clean":
        try:
            from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
        except ImportError as error:
            raise ImportError(
                "names='clean' needs open_clip: the `image` extra: `pip install 'trl_ext[image] @ git+https://github.com/trl-ext/trl_ext'`."
            ) from error
        names = list(IMAGENET_CLASSNAMES)
    else:
        raise ValueError(f"`names` must be one of {list(NAME_STYLES)}, got {style!r}.")
    if len(names) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(f"Expected {NUM_IMAGENET_CLASSES} ImageNet class names from {style!r}, got {len(names)}.")
    return names


@dataclass
class ImageNetPromptsArguments:
    """
    Parameters of [`ImageNetPromptsBuilder`].

    Args:
        names (`str`, *optional*, defaults to `"lemmas"`):
            Class-name style: `"lemmas"` (AR-GRPO), `"torchvision"` or `"clean"`.
        template (`str`, *optional*, defaults to `"a photo of {}"`):
            Text of each row; `{}` is replaced by the class name.
        num_classes (`int`, *optional*):
            Keep the first classes only (labels `0 .. num_classes - 1`).
        num_rows (`int`, *optional*):
            Number of rows, cycling through the classes (label `i % num_classes`); one row per class when unset.
        seed (`int`, *optional*):
            Shuffle the rows with this seed; class order when unset.
    """

    names: str = field(default="lemmas", metadata={"help": "Class names: 'lemmas' (AR-GRPO), 'torchvision', 'clean'."})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": "Prompt template with '{}' for the name."})
    num_classes: int | None = field(default=None, metadata={"help": "Keep the first classes only."})
    num_rows: int | None = field(default=None, metadata={"help": "Rows, classes cycled (default: one per class)."})
    seed: int | None = field(default=None, metadata={"help": "Shuffle seed (class order when unset)."})

    def __post_init__(self):
        if self.names not in NAME_STYLES:
            raise ValueError(f"`names` must be one of {list(NAME_STYLES)}, got {self.names!r}.")
        if self.template.count("{}") != 1:
            raise ValueError(f"`template` must contain '{{}}' once, where the class name goes; got {self.template!r}.")
        check_positive("num_classes", self.num_classes)
        if self.num_classes is not None and self.num_classes > NUM_IMAGENET_CLASSES:
            raise ValueError(f"`num_classes` must be <= {NUM_IMAGENET_CLASSES}, got {self.num_classes}.")
        check_positive("num_rows", self.num_rows)


class ImageNetPromptsBuilder(HubDatasetBuilder):
    """
    Build the ImageNet class-prompt set for c2i AR-GRPO (see the module docstring).

    Example:

    ```python
    >>> from trl_ext.data.imagenet import ImageNetPromptsBuilder
    >>> dataset = ImageNetPromptsBuilder(names="torchvision").build()
    >>> dataset[1]
    {'class_label': 1, 'class_name': 'goldfish', 'prompt': 'a photo of goldfish'}
    ```
    """

    arguments_class = ImageNetPromptsArguments
    module = "trl_ext.data.imagenet"
    pretty_name = "ImageNet-1k class prompts (AR-GRPO c2i)"
    license = "other"
    task_categories = ["text-to-image"]
    tags = ["image-generation", "class-conditional", "reinforcement-learning", "grpo", "ar-grpo", "imagenet"]
    citations = CITATIONS

    def build(self) -> Dataset:
        from datasets import Dataset, Features, Value

        args = self.args
        names = imagenet_class_names(args.names)
        num_classes = args.num_classes or NUM_IMAGENET_CLASSES
        num_rows = args.num_rows or num_classes
        labels = [i % num_classes for i in range(num_rows)]
        if args.seed is not None:
            random.Random(args.seed).shuffle(labels)
        features = Features({"class_label": Value("int64"), "class_name": Value("string"), "prompt": Value("string")})
        dataset = Dataset.from_dict(
            {
                "class_label": labels,
                "class_name": [names[label] for label in labels],
                "prompt": [args.template.format(names[label]) for label in labels],
            },
            features=features,
        )
        self.parameters = {
            "names": args.names,
            "template": args.template,
            "num_classes": num_classes,
            "num_rows": num_rows,
            "seed": args.seed,
        }
        self.counts = {"classes": num_classes, "rows": num_rows}
        return dataset

    # Card --------------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        return (
            "ImageNet-1k class labels with the text prompt of each class, the conditioning of class-to-image "
            "[AR-GRPO](https://huggingface.co/papers/2508.06924) (LlamaGen c2i). No image is included."
        )

    def method(self) -> str:
        args = self.args
        source = {
            "lemmas": "`timm`'s ImageNet metadata (WordNet lemma lists, as AR-GRPO)",
            "torchvision": "torchvision's `ResNet50_Weights.IMAGENET1K_V2.meta['categories']`",
            "clean": "`open_clip`'s zero-shot ImageNet names",
        }[args.names]
        return (
            f"Class names from {source}; `prompt` = `{args.template}` with the name. "
            + (
                f"The {self.parameters['num_classes']} classes are cycled to {self.parameters['num_rows']} rows"
                if args.num_rows
                else "One row per class"
            )
            + (f", shuffled with seed {args.seed}." if args.seed is not None else ", in class order.")
        )

    def column_descriptions(self) -> dict[str, str]:
        return {
            "class_label": "ImageNet-1k class index (the generator's class condition).",
            "class_name": "The class name; `trl_ext.rewards.image` templates it for CLIP/HPS rewards.",
            "prompt": "The class prompt (logged, and the text of text-based rewards).",
        }

    def source_datasets(self) -> list[str]:
        return ["imagenet-1k"]

    def usage(self) -> str:
        return (
            "The columns `ARImageGRPOTrainer` reads for class-to-image generators (`class_label`, `prompt`):\n\n"
            "```python\nfrom trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer\n\ntrainer = "
            'ARImageGRPOTrainer(model="llamagen-c2i-xl-384", vq_model="llamagen-vq16", reward_funcs=[...], '
            "args=args, train_dataset=dataset)\n```"
        )

    def license_note(self) -> str:
        return (
            "Only class indices and names: WordNet synset lemmas as distributed with ImageNet-1k (WordNet 3.0 "
            "license), or the short names shipped by torchvision / open_clip. No ImageNet image is included or needed."
        )


def build_imagenet_prompts(**kwargs) -> Dataset:
    """Build the ImageNet class-prompt set; `kwargs` are the fields of [`ImageNetPromptsArguments`]."""
    return ImageNetPromptsBuilder(ImageNetPromptsArguments(**kwargs)).build()


if __name__ == "__main__":
    ImageNetPromptsBuilder.main()
