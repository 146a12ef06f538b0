"""
CLIP-family image rewards: CLIP score (semantic fidelity), HPSv2.1 and PickScore (human preference), and the LAION
aesthetic predictor.

Each reward loads its model from the Hub id or local path a user would pass (the loading code is the same for both:
a local path is used as it is, a Hub id resolves through `huggingface_hub`), or takes an already-built model. Images
are preprocessed in batches with the official pipeline of each model ([`ImagePreprocess`]), and text features are
computed once per distinct text and cached.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._base import DEFAULT_TEMPLATE, TextSource
from ._loading import ModelImageReward, chunked, load_state_dict, resolve_file
from .preprocess import ImagePreprocess

HPS_REPO_ID = "xswu/HPSv2"
HPS_V21_CHECKPOINT = "HPS_v2.1_compressed.pt"
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
AESTHETIC_REPO_ID = "trl-lib/ddpo-aesthetic-predictor"
AESTHETIC_CHECKPOINT = "aesthetic-model.pth"  # the Hub copy of `sac+logos+ava1-l14-linearMSE.pth`
AESTHETIC_CLIP = "openai/clip-vit-large-patch14"
AESTHETIC_HIDDEN_SIZES = (1024, 128, 64, 16)


# --------------------------------------------------------------------------------------------------------------------
# Backbones: one interface over open_clip and transformers CLIP models
# --------------------------------------------------------------------------------------------------------------------


class ClipBackbone:
    """
    A CLIP model behind one interface: `encode_images(pixel_values)`, `encode_texts(texts)` (unnormalized
    embeddings), `logit_scale`, and the model's official image preprocessing in `preprocess`.
    """

    model: nn.Module
    preprocess: ImagePreprocess

    def __init__(self):
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: str | torch.device, dtype: torch.dtype) -> ClipBackbone:
        self.model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        return self

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp())

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


class OpenClipBackbone(ClipBackbone):
    """
    An open_clip model.

    Args:
        model (`nn.Module`):
            An open_clip `CLIP`/`CustomTextCLIP` model.
        tokenizer (`Callable`, *optional*):
            open_clip tokenizer. Defaults to CLIP's BPE tokenizer at the model's context length.
        preprocess ([`ImagePreprocess`], *optional*):
            Defaults to the model's own open_clip preprocessing (PIL resize).
    """

    def __init__(self, model: nn.Module, tokenizer=None, preprocess: ImagePreprocess | None = None):
        super().__init__()
        if tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            tokenizer = SimpleTokenizer(context_length=getattr(model, "context_length", 77))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess or ImagePreprocess.from_open_clip(model)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


class TransformersClipBackbone(ClipBackbone):
    """
    A transformers CLIP model (anything with `get_image_features`/`get_text_features` and `logit_scale`).

    Args:
        model ([`~transformers.PreTrainedModel`]):
            E.g. a [`~transformers.CLIPModel`].
        processor ([`~transformers.ProcessorMixin`]):
            Its processor (tokenizer + image processor); the image processor defines the preprocessing.
        preprocess ([`ImagePreprocess`], *optional*):
            Overrides the preprocessing read from `processor`.
    """

    def __init__(self, model: nn.Module, processor: Any, preprocess: ImagePreprocess | None = None):
        super().__init__()
        self.model = model.eval()
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.preprocess = preprocess or ImagePreprocess.from_image_processor(processor)
        text_config = getattr(model.config, "text_config", model.config)
        self.max_length = getattr(text_config, "max_position_embeddings", 77)

    @staticmethod
    def _pooled(output: Any) -> torch.Tensor:
        # transformers 5 returns the projected embedding as `pooler_output` of a model output; older versions, a tensor.
        return output if isinstance(output, torch.Tensor) else output.pooler_output

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._pooled(self.model.get_image_features(pixel_values=pixel_values))

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        return self._pooled(self.model.get_text_features(**inputs))


def _register_open_clip_config(model_name: str) -> str:
    """A built-in open_clip architecture name, or the path of a JSON model config (registered under its file stem)."""
    if model_name.endswith(".json") and os.path.isfile(model_name):
        import open_clip

        open_clip.add_model_config(model_name)
        return os.path.splitext(os.path.basename(model_name))[0]
    return model_name


class _RandomInitFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init(active: bool):
    """Hide open_clip's "initialized randomly" warning when a checkpoint is loaded right after creation."""
    root = logging.getLogger()
    log_filter = _RandomInitFilter()
    if active:
        root.addFilter(log_filter)
    try:
        yield
    finally:
        root.removeFilter(log_filter)


def load_open_clip(
    model_name: str,
    pretrained: str | None = None,
    checkpoint: str | None = None,
    checkpoint_repo_id: str | None = None,
    checkpoint_key: str | None = None,
    preprocess_mode: str = "pil",
    force_quick_gelu: bool = False,
) -> OpenClipBackbone:
    """
    Load an open_clip model.

    Args:
        model_name (`str`):
            A built-in architecture (`"ViT-B-32"`), `"hf-hub:org/repo"`, `"local-dir:/path"` (a folder with
            `open_clip_config.json` and weights, as on the Hub), or the path of a JSON model config.
        pretrained (`str`, *optional*):
            open_clip pretrained tag or weights file, for built-in architectures.
        checkpoint (`str`, *optional*):
            A full-model checkpoint loaded over the architecture (a local path, or a file of `checkpoint_repo_id`).
        checkpoint_repo_id (`str`, *optional*):
            Hub repository holding `checkpoint`.
        checkpoint_key (`str`, *optional*):
            Entry of the checkpoint holding the state dict (HPSv2: `"state_dict"`).
        preprocess_mode (`str`, *optional*, defaults to `"pil"`):
            [`ImagePreprocess`] mode.
        force_quick_gelu (`bool`, *optional*, defaults to `False`):
            Use QuickGELU (OpenAI-trained weights).
    """
    import open_clip

    name = _register_open_clip_config(model_name)
    with _quiet_random_init(checkpoint is not None):
        model = open_clip.create_model(
            name,
            pretrained=None if checkpoint else pretrained,
            force_quick_gelu=force_quick_gelu,
            pretrained_text=False,
        )
    if checkpoint is not None:
        path = resolve_file(checkpoint, checkpoint_repo_id)
        model.load_state_dict(load_state_dict(path, checkpoint_key))
    preprocess = ImagePreprocess.from_open_clip(model, mode=preprocess_mode)
    return OpenClipBackbone(model, open_clip.get_tokenizer(name), preprocess)


def load_transformers_clip(model: str, processor: str | None = None, revision: str | None = None):
    """Load a transformers CLIP model (`AutoModel`) and its processor (`AutoProcessor`, from `processor` if given)."""
    from transformers import AutoModel, AutoProcessor

    from ...distributed import frozen_model_loading

    with frozen_model_loading():  # a frozen scorer: whole on every process, never a ZeRO-3 partition
        loaded = AutoModel.from_pretrained(model, revision=revision)
    return TransformersClipBackbone(loaded, AutoProcessor.from_pretrained(processor or model))


def is_open_clip_name(model: str) -> bool:
    if model.startswith(("hf-hub:", "local-dir:")) or model.endswith(".json"):
        return True
    try:
        import open_clip
    except ImportError:
        return False
    return model in open_clip.list_models()


def as_backbone(model: Any, processor: Any = None, tokenizer: Any = None, preprocess: ImagePreprocess | None = None):
    """Wrap an already-built CLIP model (open_clip or transformers) in a [`ClipBackbone`]."""
    if isinstance(model, ClipBackbone):
        if preprocess is not None:
            model.preprocess = preprocess
        return model
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        if processor is None:
            raise ValueError("A transformers CLIP model needs its `processor` (tokenizer + image processor).")
        return TransformersClipBackbone(model, processor, preprocess)
    return OpenClipBackbone(model, tokenizer, preprocess)


# --------------------------------------------------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------------------------------------------------


class ClipScorer:
    """
    Image-text similarity: `scale * cos(image_embedding, text_embedding)`, with `scale = 1` (CLIP score, HPS) or
    the model's `logit_scale.exp()` (PickScore).

    Text embeddings are computed once per distinct text and kept (up to `text_cache_size` texts), which matters for
    class-conditional training, where a few hundred class prompts repeat all run long.
    """

    def __init__(self, backbone: ClipBackbone, use_logit_scale: bool = False, text_cache_size: int = 8192):
        self.backbone = backbone
        self.use_logit_scale = use_logit_scale
        self.text_cache_size = text_cache_size
        self._text_features: dict[str, torch.Tensor] = {}

    def to(self, device, dtype) -> ClipScorer:
        self.backbone.to(device, dtype)
        self._text_features.clear()
        return self

    @torch.no_grad()
    def text_features(self, texts: Sequence[str], batch_size: int) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_features))
        for chunk in chunked(missing, batch_size):
            features = self.backbone.encode_texts(list(chunk)).float()
            features = features / features.norm(dim=-1, keepdim=True)
            if len(self._text_features) + len(chunk) > self.text_cache_size:
                self._text_features.clear()
            self._text_features.update(zip(chunk, features))
        return torch.stack([self._text_features[t] for t in texts])

    @torch.no_grad()
    def image_features(self, images: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
        features = []
        for chunk in chunked(images, batch_size):
            pixels = self.backbone.preprocess(chunk, self.backbone.device, self.backbone.dtype)
            out = self.backbone.encode_images(pixels).float()
            features.append(out / out.norm(dim=-1, keepdim=True))
        return torch.cat(features)

    @torch.no_grad()
    def __call__(self, images: Sequence[torch.Tensor], texts: Sequence[str] | None, batch_size: int) -> torch.Tensor:
        if texts is None:
            raise ValueError("CLIP-similarity scorers need one text per image.")
        similarity = (self.image_features(images, batch_size) * self.text_features(texts, batch_size)).sum(-1)
        return similarity * self.backbone.logit_scale if self.use_logit_scale else similarity


class AestheticMLP(nn.Module):
    """
    The LAION improved aesthetic predictor head (`sac+logos+ava1-l14-linearMSE.pth`): linear layers without
    activations (1024-128-64-16-1 with dropout between the first ones), on L2-normalized CLIP ViT-L/14 image
    embeddings. Parameter names follow the released checkpoint (`layers.0`, `layers.2`, ..., `layers.7`).

    Args:
        input_size (`int`, *optional*, defaults to `768`):
            CLIP embedding size.
        hidden_sizes (`tuple[int, int, int, int]`, *optional*, defaults to `(1024, 128, 64, 16)`):
            Widths of the hidden layers (smaller in tests).
    """

    def __init__(self, input_size: int = 768, hidden_sizes: Sequence[int] = AESTHETIC_HIDDEN_SIZES):
        super().__init__()
        h1, h2, h3, h4 = hidden_sizes
        self.layers = nn.Sequential(
            nn.Linear(input_size, h1),
            nn.Dropout(0.2),
            nn.Linear(h1, h2),
            nn.Dropout(0.2),
            nn.Linear(h2, h3),
            nn.Dropout(0.1),
            nn.Linear(h3, h4),
            nn.Linear(h4, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings).squeeze(-1)


class AestheticScorer:
    """LAION aesthetic score (roughly 1-10): [`AestheticMLP`] on normalized CLIP image embeddings."""

    def __init__(self, backbone: ClipBackbone, mlp: AestheticMLP):
        self.backbone = backbone
        self.mlp = mlp.eval()

    def to(self, device, dtype) -> AestheticScorer:
        self.backbone.to(device, dtype)
        self.mlp.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def __call__(self, images: Sequence[torch.Tensor], texts: Sequence[str] | None, batch_size: int) -> torch.Tensor:
        scores = []
        for chunk in chunked(images, batch_size):
            pixels = self.backbone.preprocess(chunk, self.backbone.device, self.backbone.dtype)
            embeddings = self.backbone.encode_images(pixels)
            embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
            scores.append(self.mlp(embeddings).float())
        return torch.cat(scores)


# Module-level loaders: a reward describes its scorer as `functools.partial(loader, **plain_arguments)`, which is
# picklable and keys the per-process cache.


def _load_clip_scorer(model, pretrained=None, processor=None, backend="auto", use_logit_scale=False, revision=None):
    if backend == "open_clip" or (backend == "auto" and is_open_clip_name(model)):
        backbone = load_open_clip(model, pretrained=pretrained)
    else:
        backbone = load_transformers_clip(model, processor, revision)
    return ClipScorer(backbone, use_logit_scale=use_logit_scale)


def _load_hps_scorer(checkpoint, repo_id, model_name):
    # HPSv2's own loader: open_clip ViT-H-14 (GELU, not QuickGELU), the HPS checkpoint's "state_dict" loaded over it,
    # and HPSv2's float-first preprocessing.
    backbone = load_open_clip(
        model_name,
        checkpoint=checkpoint,
        checkpoint_repo_id=repo_id,
        checkpoint_key="state_dict",
        preprocess_mode="float",
    )
    return ClipScorer(backbone)


def _load_aesthetic_backbone(clip_model, clip_pretrained, processor) -> ClipBackbone:
    if is_open_clip_name(clip_model):
        # OpenAI's CLIP weights were trained with QuickGELU; open_clip only switches it on by name.
        return load_open_clip(clip_model, pretrained=clip_pretrained, force_quick_gelu=clip_pretrained == "openai")
    return load_transformers_clip(clip_model, processor)


def _load_aesthetic_head(mlp, repo_id, backbone: ClipBackbone, hidden_sizes) -> AestheticMLP:
    if isinstance(backbone, OpenClipBackbone):
        input_size = backbone.model.visual.output_dim
    else:
        input_size = backbone.model.config.projection_dim
    head = AestheticMLP(input_size, hidden_sizes)
    head.load_state_dict(load_state_dict(resolve_file(mlp, repo_id)))
    return head


def _load_aesthetic_scorer(mlp, repo_id, clip_model, clip_pretrained, processor, hidden_sizes):
    backbone = _load_aesthetic_backbone(clip_model, clip_pretrained, processor)
    return AestheticScorer(backbone, _load_aesthetic_head(mlp, repo_id, backbone, hidden_sizes))


# --------------------------------------------------------------------------------------------------------------------
# Reward factories
# --------------------------------------------------------------------------------------------------------------------


def _text_source(text_column, class_column, template, class_names):
    return TextSource(text_column=text_column, class_column=class_column, template=template, class_names=class_names)


def make_clip_score_reward(
    model: str | nn.Module = "openai/clip-vit-base-patch32",
    *,
    pretrained: str | None = None,
    processor: Any = None,
    tokenizer: Any = None,
    backend: str = "auto",
    preprocess: ImagePreprocess | None = None,
    text_column: str | None = None,
    class_column: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "clip_score",
) -> ModelImageReward:
    """
    CLIP score: the cosine similarity between the image and its text (a caption, or `"a photo of {class}"`) under
    a CLIP model, in [-1, 1]. AR-GRPO's semantic-fidelity reward with `openai/clip-vit-base-patch32` (weight 5 in
    its mix, plus a [`StepBonus`]).

    Args:
        model (`str` or `nn.Module`, *optional*, defaults to `"openai/clip-vit-base-patch32"`):
            transformers Hub id or folder (`AutoModel`), or open_clip model: a built-in architecture with
            `pretrained`, `"hf-hub:org/repo"` or `"local-dir:/path"`; or an already-built model (transformers
            `CLIPModel` with `processor`, or open_clip model with optional `tokenizer`).
        pretrained (`str`, *optional*):
            open_clip pretrained tag or weights file, for a built-in open_clip architecture.
        processor (`str` or processor, *optional*):
            transformers processor (Hub id, folder, or object). Defaults to the model's own.
        tokenizer (*optional*):
            open_clip tokenizer, for an already-built open_clip model.
        backend (`str`, *optional*, defaults to `"auto"`):
            `"transformers"`, `"open_clip"`, or `"auto"` (open_clip for open_clip names and schemas).
        preprocess ([`ImagePreprocess`], *optional*):
            Override of the model's preprocessing, for an already-built model.
        text_column, class_column, template, class_names:
            Where the texts come from, see [`TextSource`].
        device, dtype, batch_size, value_range:
            See [`ModelImageReward`].
        name (`str`, *optional*, defaults to `"clip_score"`):
            Reward name.

    Example:

    ```python
    >>> clip_score = make_clip_score_reward("openai/clip-vit-base-patch32")  # loads on first call
    >>> clip_score.__name__
    'clip_score'
    ```
    """
    texts = _text_source(text_column, class_column, template, class_names)
    common = dict(text_source=texts, device=device, dtype=dtype, batch_size=batch_size, value_range=value_range)
    if isinstance(model, str):
        if not isinstance(processor, str | None):
            raise TypeError("With a model name, pass `processor` as a name or path too (or pass both as objects).")
        loader = functools.partial(
            _load_clip_scorer, model=model, pretrained=pretrained, processor=processor, backend=backend
        )
        return ModelImageReward(name, loader=loader, **common)
    return ModelImageReward(name, scorer=ClipScorer(as_backbone(model, processor, tokenizer, preprocess)), **common)


def make_hps_v2_reward(
    checkpoint: str = HPS_V21_CHECKPOINT,
    *,
    repo_id: str | None = HPS_REPO_ID,
    model_name: str = "ViT-H-14",
    model: nn.Module | None = None,
    tokenizer: Any = None,
    text_column: str | None = None,
    class_column: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "hps_v2",
) -> ModelImageReward:
    """
    Human Preference Score v2.1 ([HPSv2](https://huggingface.co/papers/2306.09341)): the cosine similarity of an
    open_clip ViT-H/14 fine-tuned on human preferences, about 0.2-0.35 for typical images. AR-GRPO uses it x5 plus
    a [`StepBonus`].

    Loading follows HPSv2's code: open_clip `ViT-H-14` built without weights, then the `state_dict` entry of
    `HPS_v2.1_compressed.pt` loaded over it (strictly), with HPSv2's preprocessing (tensor first, then bicubic
    antialiased resize, center crop, CLIP normalization).

    Args:
        checkpoint (`str`, *optional*, defaults to `"HPS_v2.1_compressed.pt"`):
            Local path of the checkpoint, or its file name in `repo_id` (`"HPS_v2_compressed.pt"` for v2.0).
        repo_id (`str`, *optional*, defaults to `"xswu/HPSv2"`):
            Hub repository of the checkpoint.
        model_name (`str`, *optional*, defaults to `"ViT-H-14"`):
            open_clip architecture, or the path of a JSON model config (tests build tiny versions this way).
        model (`nn.Module`, *optional*):
            An already-built open_clip model with HPS weights (then `checkpoint` is ignored).
        tokenizer (*optional*):
            open_clip tokenizer for `model`.
        text_column, class_column, template, class_names, device, dtype, batch_size, value_range, name:
            See [`make_clip_score_reward`].
    """
    texts = _text_source(text_column, class_column, template, class_names)
    common = dict(text_source=texts, device=device, dtype=dtype, batch_size=batch_size, value_range=value_range)
    if model is not None:
        preprocess = ImagePreprocess.from_open_clip(model, mode="float")
        return ModelImageReward(name, scorer=ClipScorer(OpenClipBackbone(model, tokenizer, preprocess)), **common)
    loader = functools.partial(_load_hps_scorer, checkpoint=checkpoint, repo_id=repo_id, model_name=model_name)
    return ModelImageReward(name, loader=loader, **common)


def make_pick_score_reward(
    model: str | nn.Module = PICKSCORE_MODEL,
    *,
    processor: Any = PICKSCORE_PROCESSOR,
    text_column: str | None = None,
    class_column: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    class_names: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "pick_score",
) -> ModelImageReward:
    """
    PickScore ([Pick-a-Pic](https://huggingface.co/papers/2305.01569)): `logit_scale.exp() * cos` of a
    transformers CLIP-H fine-tuned on human preferences (about 18-24), with the LAION CLIP-ViT-H-14 processor, as in
    the PickScore release. An evaluation reward in AR-GRPO.

    Args:
        model (`str` or [`~transformers.CLIPModel`], *optional*, defaults to `"yuvalkirstain/PickScore_v1"`):
            Hub id or folder, or an already-built model.
        processor (`str` or processor, *optional*, defaults to `"laion/CLIP-ViT-H-14-laion2B-s32B-b79K"`):
            Hub id, folder or object.
        text_column, class_column, template, class_names, device, dtype, batch_size, value_range, name:
            See [`make_clip_score_reward`].
    """
    texts = _text_source(text_column, class_column, template, class_names)
    common = dict(text_source=texts, device=device, dtype=dtype, batch_size=batch_size, value_range=value_range)
    if isinstance(model, str):
        if not isinstance(processor, str):
            raise TypeError("With a model name, pass `processor` as a name or path too (or pass both as objects).")
        loader = functools.partial(
            _load_clip_scorer, model=model, processor=processor, backend="transformers", use_logit_scale=True
        )
        return ModelImageReward(name, loader=loader, **common)
    if isinstance(processor, str):
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(processor)
    return ModelImageReward(name, scorer=ClipScorer(as_backbone(model, processor), use_logit_scale=True), **common)


def make_laion_aesthetic_reward(
    mlp: str | AestheticMLP = AESTHETIC_CHECKPOINT,
    *,
    repo_id: str | None = AESTHETIC_REPO_ID,
    clip_model: str | nn.Module = AESTHETIC_CLIP,
    clip_pretrained: str | None = None,
    processor: Any = None,
    hidden_sizes: Sequence[int] = AESTHETIC_HIDDEN_SIZES,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "laion_aesthetic",
) -> ModelImageReward:
    """
    LAION aesthetic score (about 1-10): the improved aesthetic predictor MLP on L2-normalized CLIP ViT-L/14 image
    embeddings. Text-free. An evaluation reward in AR-GRPO; DDPO's aesthetic reward.

    Args:
        mlp (`str` or [`AestheticMLP`], *optional*, defaults to `"aesthetic-model.pth"`):
            Local path of the MLP state dict (`sac+logos+ava1-l14-linearMSE.pth`), its file name in `repo_id`, or an
            already-built head.
        repo_id (`str`, *optional*, defaults to `"trl-lib/ddpo-aesthetic-predictor"`):
            Hub repository of the MLP.
        clip_model (`str` or `nn.Module`, *optional*, defaults to `"openai/clip-vit-large-patch14"`):
            transformers Hub id or folder, an open_clip name (`"ViT-L-14"` with `clip_pretrained="openai"`), or an
            already-built CLIP model (with `processor` for transformers).
        clip_pretrained (`str`, *optional*):
            open_clip pretrained tag or file.
        processor (`str` or processor, *optional*):
            transformers processor, when not the model's own.
        hidden_sizes (`tuple[int, ...]`, *optional*, defaults to `(1024, 128, 64, 16)`):
            MLP widths (smaller in tests).
        device, dtype, batch_size, value_range, name:
            See [`ModelImageReward`].
    """
    common = dict(device=device, dtype=dtype, batch_size=batch_size, value_range=value_range)
    if isinstance(clip_model, str) and isinstance(mlp, str) and isinstance(processor, str | None):
        loader = functools.partial(
            _load_aesthetic_scorer,
            mlp=mlp,
            repo_id=repo_id,
            clip_model=clip_model,
            clip_pretrained=clip_pretrained,
            processor=processor,
            hidden_sizes=tuple(hidden_sizes),
        )
        return ModelImageReward(name, loader=loader, **common)
    if isinstance(clip_model, str):
        backbone = _load_aesthetic_backbone(clip_model, clip_pretrained, processor)
    else:
        backbone = as_backbone(clip_model, processor)
    if isinstance(mlp, str):
        mlp = _load_aesthetic_head(mlp, repo_id, backbone, hidden_sizes)
    return ModelImageReward(name, scorer=AestheticScorer(backbone, mlp), **common)


clip_score = make_clip_score_reward()
hps_v2 = make_hps_v2_reward()
pick_score = make_pick_score_reward()
laion_aesthetic = make_laion_aesthetic_reward()

__all__ = [
    "AestheticMLP",
    "AestheticScorer",
    "ClipBackbone",
    "ClipScorer",
    "OpenClipBackbone",
    "TransformersClipBackbone",
    "clip_score",
    "hps_v2",
    "laion_aesthetic",
    "load_open_clip",
    "load_transformers_clip",
    "make_clip_score_reward",
    "make_hps_v2_reward",
    "make_laion_aesthetic_reward",
    "make_pick_score_reward",
    "pick_score",
]
