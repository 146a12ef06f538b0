"""
Image-generation evaluation: `python -m trl_ext.eval.image`.

Three runs, one report (`<output_dir>/eval/report.json` in the shared schema, and `report.md`):

- **c2i** (class-to-image LlamaGen): `images_per_class` images for each class (all of the generator's, the first
  `num_classes`, or `class_ids`), sampled with [`~trl_ext.generation.ImageTokenSampler`], decoded with the VQ
  tokenizer and saved as `<output_dir>/eval/samples.npz` in the layout of ADM's evaluator (openai/guided-diffusion,
  `evaluations/evaluator.py`): `arr_0` the images, `uint8`, `(N, H, W, 3)`, and `arr_1` the class labels, `int64`,
  `(N,)`, as ADM's `image_sample.py` saves them. Then FID, sFID, Inception Score, precision and recall against a
  reference batch in the layout of ADM's `VIRTUAL_imagenet256_labeled.npz` (its `arr_0` is read; see below for its
  precomputed `mu`/`sigma`). Optionally also the image rewards, against AR-GRPO's text "a photo of {class}" (ImageNet
  lemmas for a 1000-class generator), mean and per class.
- **t2i** (text-to-image LlamaGen): one or more images per prompt of a prompt file (DrawBench-style CSV, JSONL or
  TXT, or a `python -m trl_ext.data.coco` folder), scored with the image rewards by the names the AR-GRPO recipes
  accept (`reward_funcs`, or a `reward_mix`), mean and per prompt.
- **images**: precomputed samples (`images`: an `.npz` in ADM's layout or a folder of PNG/JPEG files), scored the
  same way without loading a generator: metrics with `reference_batch`, rewards with `prompts`.

```bash
# c2i: 50 images per class (50k), FID/sFID/IS/precision/recall against ADM's ImageNet 256 reference batch
python -m trl_ext.eval.image --model_name_or_path outputs/ar-grpo-c2i-xl-384 --vq_model_name_or_path llamagen-vq16 \
    --reference_batch VIRTUAL_imagenet256_labeled.npz \
    --inception_weights weights-inception-2015-12-05-6726825d.pth --output_dir outputs/ar-grpo-c2i-xl-384
# t2i: DrawBench prompts scored with AR-GRPO's reward mix (or --reward_funcs clip_score hps_v2, or a mix YAML)
python -m trl_ext.eval.image --model_name_or_path outputs/ar-grpo-t2i --prompts drawbench.csv \
    --reward_mix ar_grpo_t2i --output_dir outputs/ar-grpo-t2i
# precomputed samples (e.g. LlamaGen's own sample_c2i_ddp.py output)
python -m trl_ext.eval.image --images samples.npz --reference_batch VIRTUAL_imagenet256_labeled.npz \
    --inception_weights weights-inception-2015-12-05-6726825d.pth --output_dir outputs/baseline
```

Sampling defaults are LlamaGen's evaluation scripts, which AR-GRPO's public code keeps unchanged
(`autoregressive/sample/sample_c2i_ddp.py`: CFG 1.5, no top-k/top-p, temperature 1, 50,000 images, decoded at the
model's size and resized to 256 px with bicubic interpolation when it differs; `sample_t2i.py`: CFG 7.5, top-k 1000,
temperature 1). LlamaGen draws 50,000 random class labels; here the classes are balanced (50 per class by default)
and the images are stored in a seeded random order, because ADM's Inception Score splits the file into consecutive
chunks of 5,000 images, and class-sorted chunks would each cover a tenth of the classes.

**Metrics.** Features come from torch-fidelity's `FeatureExtractorInceptionV3` (the `eval` extra pins
`torch-fidelity==0.4.0`): the TF "inception-2015-12-05" graph ADM also uses, converted to PyTorch, with TF1's
bilinear resize to 299 px reproduced. Weights are read from a local file (`inception_weights` or the
`TRL_EXT_INCEPTION_WEIGHTS` variable; the file torch-fidelity downloads, [`INCEPTION_WEIGHTS_URL`]). From one pass:

- FID: Fréchet distance between Gaussians fitted to the 2048-d `pool_3` features (float64 statistics,
  `np.cov` normalisation); the matrix square root is taken through symmetric eigendecompositions,
  `tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))`, which is exact for covariance matrices and stays real.
- sFID (ADM's): the same distance over the first 7 channels of `mixed_6/conv` (17x17 spatial, 2023 values), which is
  the 1x1 branch of torch-fidelity's `Mixed_6d` (its weight converter, `utils/util_convert_inception_weights.py`, maps
  TF `mixed_6/conv` there with the output channels in order), read with a forward hook after its ReLU (taken to be the
  op the TF tensor `mixed_6/conv:0` names; not checkable offline). The order in which the 2023 values are
  flattened differs from ADM's (NCHW vs NHWC), which the Fréchet distance does not see (a permutation of features).
- Inception Score (ADM's): softmax of `pool_3 @ W` (the 1008-way logits without bias, torch-fidelity's
  `logits_unbiased`), `exp(mean KL(p(y|x) || p(y)))` over consecutive splits of 5,000 images, averaged.
- Precision / recall (Kynkäänniemi et al. 2019, as ADM): a sample counts for precision when it lies within the k-th
  nearest-neighbour radius (k=3) of some reference feature; recall swaps the roles.

**Against ADM's TensorFlow evaluator** (TensorFlow 1.x graphs; not installable here in a useful way). What is known:
torch-fidelity's Inception port reproduces the TF graph's outputs: its test suite bounds the `pool_3` and
`logits_unbiased` differences from TF on CIFAR-10 batches at 1e-4 absolute / 1e-5 relative on CPU and 1e-3 / 1e-4 on
GPU (`tests/precision/test_inception.py`; the 7-channel `mixed_6/conv` map of sFID is not covered there), and checks
FID of 5,000 CIFAR-10 train vs 5,000 CIFAR-10 test images against the TF reference implementation (TTUR) to a
relative error below 1e-6 (10.3233274, `tests/precision/test_metric_fid_fidelity.py`). Both need the real weights and
CIFAR-10, neither reachable offline; the FID check is reproduced in `tests/test_eval_image.py` and runs when
`TRL_EXT_INCEPTION_WEIGHTS` and the two image folders are provided. Remaining differences from ADM's numbers:

1. ADM's reference `.npz` carries precomputed TF statistics (`mu`, `sigma`, `mu_s`, `sigma_s`), which ADM uses when
   present; this module always recomputes the reference statistics from `arr_0` with the same extractor as the
   samples, so both sides see the same numerics (mixing TF reference statistics with PyTorch sample features would
   add the TF/PyTorch feature difference to the FID).
2. ADM's precision/recall computes pairwise distances in float16 (float32 only on overflow), this module in float32,
   so borderline neighbours can flip: emulating ADM's float16 distances on 4,000 + 4,000 synthetic low-rank features
   of `pool_3`'s scale (squared norms ~950) moved precision and recall by at most 0.002.
3. ADM's `scipy.linalg.sqrtm(S1 S2)` vs the symmetric eigendecompositions here: identical in exact arithmetic; the
   tests check agreement to 1e-6 relative with a direct matrix square root of `S1 S2` (numpy eigenvectors; scipy is
   not a dependency here).
4. torch-fidelity has no sFID, and its own precision/recall defaults to VGG16 features (the original paper's); ADM's,
   and this module's, use Inception `pool_3`.
5. Convolution numerics of the GPU libraries (cuDNN vs TF's kernels): not measured here.

Measured here, on the same images with the same random-weight Inception: this module's FID equals
`torch_fidelity.calculate_metrics`'s to 5e-6 relative (6 vs 6 images; with 3,000 vs 3,000 synthetic 2048-d features,
its `fid_statistics_to_metric` and [`frechet_distance`] agree to 2e-14 relative), its Inception Score to 10 digits, its
precision/recall up to float32 rounding of the fractions. Not measured: any number against the TF evaluator itself.

Example (random-weight Inception and tiny images: the numbers mean nothing, the pipeline is the real one):

```python
>>> import os, tempfile
>>> import numpy as np
>>> from trl_ext.eval.image import InceptionFeatureExtractor, compute_image_metrics
>>> from trl_ext.testing_image import save_random_inception_weights
>>> folder = tempfile.TemporaryDirectory()  # the weights file is 95 MB
>>> weights = save_random_inception_weights(os.path.join(folder.name, "inception.pth"))
>>> extractor = InceptionFeatureExtractor(weights, batch_size=4)
>>> images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
>>> features = extractor(images)
>>> features.pool.shape, features.spatial.shape, features.logits.shape
((4, 2048), (4, 2023), (4, 1008))
>>> metrics = compute_image_metrics(features, features)
>>> abs(metrics["fid"]) < 1e-6, metrics["precision"], metrics["recall"]
(True, 1.0, 1.0)
>>> folder.cleanup()
```
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_WEIGHTS_ENV = "TRL_EXT_INCEPTION_WEIGHTS"
ADM_REFERENCE_BATCH_URL = (
    "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
    "VIRTUAL_imagenet256_labeled.npz"
)
# LlamaGen's evaluation scripts (kept by AR-GRPO's public code): sample_c2i_ddp.py and sample_t2i.py.
C2I_SAMPLING = {"cfg_scale": 1.5, "top_k": None, "top_p": None, "temperature": 1.0}
T2I_SAMPLING = {"cfg_scale": 7.5, "top_k": 1000, "top_p": None, "temperature": 1.0}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PROMPT_COLUMNS = ("prompt", "Prompt", "Prompts", "caption", "text")
SPATIAL_CHANNELS = 7  # ADM's sFID: mixed_6/conv[..., :7]


# ----------------------------------------------------------------------------------------------------------------
# Images in and out
# ----------------------------------------------------------------------------------------------------------------
def _check_images(images: np.ndarray, what: str) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{what} must be uint8 images of shape (N, H, W, 3) (ADM's `arr_0` layout), got dtype {images.dtype} and "
            f"shape {images.shape}."
        )
    if len(images) == 0:
        raise ValueError(f"{what} holds no images.")
    return images


def save_samples_npz(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """
    Save samples in ADM's layout: `arr_0` the images `uint8 (N, H, W, 3)`, and `arr_1` the class labels `(N,)` when
    given (as guided-diffusion's `image_sample.py` writes them). Returns the path.
    """
    path = os.fspath(path)
    images = _check_images(np.asarray(images), "`images`")
    arrays = [images]
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"`labels` must have shape ({len(images)},), got {labels.shape}.")
        arrays.append(labels)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, *arrays)
    return path


def load_images(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """
    Read images from an `.npz` in ADM's layout (`arr_0`, and `arr_1` labels if present) or from a folder of image
    files (sorted by name, converted to RGB; all of one size). Returns `(images uint8 (N, H, W, 3), labels or None)`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        from PIL import Image

        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"`images` folder {path!r} has no image files ({', '.join(IMAGE_EXTENSIONS)}).")
        arrays = [np.asarray(Image.open(os.path.join(path, f)).convert("RGB")) for f in files]
        sizes = sorted({a.shape for a in arrays})
        if len(sizes) > 1:
            raise ValueError(f"Images in {path!r} differ in size {sizes[:4]}; resize them to one size first.")
        return np.stack(arrays), None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such `.npz` file or image folder: {path!r}.")
    with np.load(path) as data:
        if "arr_0" not in data.files:
            raise ValueError(
                f"{path!r} has no `arr_0` (keys: {data.files}); ADM's layout stores the images as `arr_0`, uint8 "
                "(N, H, W, 3), e.g. `np.savez(path, images)`."
            )
        images = _check_images(data["arr_0"], f"`arr_0` of {path!r}")
        labels = data["arr_1"] if "arr_1" in data.files else None
    return images, labels


def to_uint8_images(pixels: torch.Tensor, image_size: int | None = None) -> np.ndarray:
    """
    Decoded pixels `(B, 3, H, W)` in `[-1, 1]` to `uint8 (B, H', W', 3)`, as LlamaGen's `sample_c2i_ddp.py`: bicubic
    resize to `image_size` when it differs, then `clamp(127.5 x + 128, 0, 255)` truncated to integers.
    """
    pixels = pixels.float()
    if image_size is not None and tuple(pixels.shape[-2:]) != (image_size, image_size):
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bicubic")
    data = torch.clamp(127.5 * pixels + 128.0, 0, 255).to(torch.uint8)
    return data.permute(0, 2, 3, 1).cpu().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Inception features
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class InceptionFeatures:
    """
    Inception features of a set of images, float64 numpy arrays.

    Args:
        pool (`np.ndarray` of shape `(N, 2048)`): `pool_3` (FID, precision/recall).
        logits (`np.ndarray` of shape `(N, 1008)`): `pool_3 @ W`, the logits without bias (Inception Score).
        spatial (`np.ndarray` of shape `(N, 2023)`): the first 7 channels of `mixed_6/conv`, 17x17 (sFID).
    """

    pool: np.ndarray
    logits: np.ndarray
    spatial: np.ndarray


def resolve_inception_weights(path: str | None) -> str | None:
    """
    The local Inception weights to use: `path`, else `$TRL_EXT_INCEPTION_WEIGHTS`. `None` (torch-fidelity then
    downloads them) only when the Hugging Face Hub is not in offline mode; offline, or for a missing file, a
    `ValueError` naming `--inception_weights` and where to get the file.
    """
    path = path or os.environ.get(INCEPTION_WEIGHTS_ENV) or None
    if path is not None:
        if not os.path.isfile(path):
            raise ValueError(
                f"`--inception_weights` {path!r} is not a file. Download {INCEPTION_WEIGHTS_URL} (torch-fidelity's "
                "InceptionV3, the TF 2015-12-05 weights converted to PyTorch) and pass its path."
            )
        return path
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ValueError(
            "Offline (HF_HUB_OFFLINE=1) and no `--inception_weights`: FID/IS need torch-fidelity's InceptionV3 "
            f"weights as a local file. Download {INCEPTION_WEIGHTS_URL} on a machine with internet and pass its "
            f"path with `--inception_weights` (or set {INCEPTION_WEIGHTS_ENV})."
        )
    return None


class InceptionFeatureExtractor:
    """
    torch-fidelity's InceptionV3 (the TF graph of ADM's evaluator, in PyTorch) returning the three feature sets of
    ADM's metrics in one forward: `pool_3`, its 1008-way logits without bias, and the 7-channel `mixed_6/conv` map.

    Args:
        weights_path (`str`, *optional*):
            A local `weights-inception-2015-12-05-*.pth` (see [`resolve_inception_weights`]).
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
            Where the network runs.
        batch_size (`int`, *optional*, defaults to `50`):
            Images per forward.
    """

    def __init__(self, weights_path: str | None = None, device: str | torch.device = "cpu", batch_size: int = 50):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as error:
            raise ImportError(
                "FID/IS need torch-fidelity: `pip install 'trl_ext[eval]'` (or `pip install torch-fidelity==0.4.0`)."
            ) from error
        self.weights_path = resolve_inception_weights(weights_path)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=self.weights_path
        ).to(self.device)
        self._spatial: list[torch.Tensor] = []
        # ADM's "mixed_6/conv" is the 1x1 branch of the fourth 17x17 block (TF mixed_6 = torchvision Mixed_6d).
        self.model.Mixed_6d.branch1x1.register_forward_hook(
            lambda module, inputs, output: self._spatial.append(output[:, :SPATIAL_CHANNELS].flatten(1).float())
        )

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> InceptionFeatures:
        """Features of `uint8 (N, H, W, 3)` images (any size: resized to 299 px inside, like the TF graph)."""
        images = _check_images(np.asarray(images), "`images`")
        pools, logits, spatials = [], [], []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
            batch = batch.permute(0, 3, 1, 2).contiguous().to(self.device)
            self._spatial.clear()
            pool, logit = self.model(batch)
            pools.append(pool.double().cpu())
            logits.append(logit.double().cpu())
            spatials.append(self._spatial[0].double().cpu())
        return InceptionFeatures(
            pool=torch.cat(pools).numpy(), logits=torch.cat(logits).numpy(), spatial=torch.cat(spatials).numpy()
        )


def reference_features(
    extractor: InceptionFeatureExtractor, reference_batch: str, cache: str | None = None
) -> tuple[InceptionFeatures, tuple[int, ...]]:
    """
    Inception features of a reference batch's `arr_0` (or image folder) and the images' shape, read from `cache` (an
    `.npz`) when it was written for the same reference file (path, size, modification time) and Inception weights
    file, else computed (and written to `cache` when given): the 10,000 ImageNet reference images need not be
    re-encoded per checkpoint.
    """
    weights = extractor.weights_path
    stamp = {
        "reference": os.path.abspath(reference_batch),
        "reference_size": os.path.getsize(reference_batch),
        "reference_mtime": os.path.getmtime(reference_batch),
        "weights": os.path.abspath(weights) if weights else INCEPTION_WEIGHTS_URL,
        "weights_size": os.path.getsize(weights) if weights else 0,
    }
    if cache is not None and os.path.isfile(cache):
        with np.load(cache) as data:
            if json.loads(str(data["stamp"])) == stamp:
                features = InceptionFeatures(pool=data["pool"], logits=data["logits"], spatial=data["spatial"])
                return features, tuple(int(d) for d in data["shape"])
    images, _ = load_images(reference_batch)
    features = extractor(images)
    if cache is not None:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        np.savez(
            cache,
            stamp=json.dumps(stamp),
            shape=np.asarray(images.shape),
            pool=features.pool,
            logits=features.logits,
            spatial=features.spatial,
        )
    return features, images.shape


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------
def fid_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `(D,)` and covariance `(D, D)` (unbiased, `np.cov`) of `(N, D)` features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"FID statistics need at least 2 feature rows (N, D), got shape {features.shape}.")
    return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """
    Fréchet distance between `N(mu1, sigma1)` and `N(mu2, sigma2)`:
    `|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2)`, with
    `tr sqrt(sigma1 sigma2) = sum sqrt(eig(sqrt(sigma1) sigma2 sqrt(sigma1)))` (a symmetric PSD matrix: real, no
    `sqrtm` of a non-symmetric product, exact for singular covariances).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"Statistics of different sizes: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}."
        )
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """
    Fréchet distance between Gaussians fitted to two feature sets `(N1, D)` and `(N2, D)` ([`fid_statistics`]).

    With fewer images than dimensions (a small evaluation; covariances of rank < D) the `D x D` matrices are never
    formed: with centred features `A1`, `A2`, the non-zero eigenvalues of `sigma1 sigma2` are those of `M M^T`,
    `M = A1 A2^T / sqrt((N1 - 1)(N2 - 1))`, so `tr sqrt(sigma1 sigma2)` is the sum of the singular values of `M`
    (exact, `O(N1 N2 D)`). Otherwise [`frechet_distance`] on the statistics.
    """
    x1, x2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1] or min(len(x1), len(x2)) < 2:
        raise ValueError(f"Need two (N >= 2, D) feature arrays of the same D, got {x1.shape} and {x2.shape}.")
    if min(len(x1), len(x2)) > x1.shape[1]:
        return frechet_distance(*fid_statistics(x1), *fid_statistics(x2))
    a1, a2 = x1 - x1.mean(0), x2 - x2.mean(0)
    scale = np.sqrt((len(x1) - 1) * (len(x2) - 1))
    trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / scale
    diff = x1.mean(0) - x2.mean(0)
    trace1, trace2 = (a1 * a1).sum() / (len(x1) - 1), (a2 * a2).sum() / (len(x2) - 1)
    return float(diff @ diff + trace1 + trace2 - 2 * trace_sqrt)


def inception_score(logits: np.ndarray, split_size: int = 5000) -> float:
    """
    ADM's Inception Score: `exp(mean_x KL(p(y|x) || p(y)))` over consecutive splits of `split_size` images, averaged
    (a last, shorter split counts like the others).
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    log_p = logits.log_softmax(-1)
    scores = []
    for start in range(0, len(log_p), split_size):
        part = log_p[start : start + split_size]
        log_marginal = part.exp().mean(0).log()
        kl = (part.exp() * (part - log_marginal)).sum(-1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores))


def _pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]).clamp_(min=0)


def _knn_radii(features: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    # Squared distance to the k-th nearest neighbour other than the point itself (the (k+1)-th smallest, self = 0).
    return torch.cat(
        [
            _pairwise_sq_distances(features[s : s + chunk], features).kthvalue(k + 1, dim=1).values
            for s in range(0, len(features), chunk)
        ]
    )


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    inside = [
        (_pairwise_sq_distances(points[s : s + chunk], centres) <= radii[None, :]).any(1)
        for s in range(0, len(points), chunk)
    ]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    reference: np.ndarray,
    samples: np.ndarray,
    k: int = 3,
    chunk: int = 4096,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """
    Improved precision and recall (Kynkäänniemi et al. 2019; ADM's `ManifoldEstimator` with `nhood_sizes=(3,)`):
    precision is the fraction of `samples` inside some reference point's k-NN ball, recall the fraction of
    `reference` inside some sample's ball. Float32 distances, in row chunks of `chunk`, on `device` (a GPU for 50k
    samples).
    """
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float32, device=device)
    gen = torch.as_tensor(np.asarray(samples), dtype=torch.float32, device=device)
    if min(len(ref), len(gen)) <= k:
        raise ValueError(
            f"Precision/recall with k={k} needs more than {k} images on each side, got {len(ref)} and {len(gen)}."
        )
    ref_radii, gen_radii = _knn_radii(ref, k, chunk), _knn_radii(gen, k, chunk)
    return _coverage(gen, ref, ref_radii, chunk), _coverage(ref, gen, gen_radii, chunk)


def compute_image_metrics(
    samples: InceptionFeatures,
    reference: InceptionFeatures,
    split_size: int = 5000,
    k: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """FID, sFID, Inception Score (of the samples), precision and recall: ADM's evaluator's five numbers."""
    fid = frechet_distance_from_features(samples.pool, reference.pool)
    sfid = frechet_distance_from_features(samples.spatial, reference.spatial)
    precision, recall = precision_recall(reference.pool, samples.pool, k=k, device=device)
    return {
        "fid": fid,
        "sfid": sfid,
        "inception_score": inception_score(samples.logits, split_size),
        "precision": precision,
        "recall": recall,
    }


# ----------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------
def make_sampler(task: str, **overrides: Any):
    """An [`~trl_ext.generation.ImageTokenSampler`] with LlamaGen's evaluation settings for `task`, `None`s ignored."""
    from ..generation import ImageTokenSampler

    settings = dict(C2I_SAMPLING if task == "c2i" else T2I_SAMPLING)
    settings.update({key: value for key, value in overrides.items() if value is not None})
    return ImageTokenSampler(**settings), settings


def balanced_class_labels(class_ids: Sequence[int], images_per_class: int, seed: int = 0) -> np.ndarray:
    """`images_per_class` labels of each class, in a seeded random order (ADM's IS splits need mixed classes)."""
    labels = np.repeat(np.asarray(class_ids, dtype=np.int64), images_per_class)
    return labels[np.random.default_rng(seed).permutation(len(labels))]


@torch.no_grad()
def sample_class_images(
    model,
    vq,
    labels: Sequence[int],
    sampler,
    batch_size: int = 32,
    seed: int = 0,
    image_size: int | None = None,
) -> np.ndarray:
    """
    One image per label with a c2i generator and its VQ tokenizer, on the generator's device. Returns `uint8
    (N, H, W, 3)` (resized to `image_size` as in [`to_uint8_images`]).
    """
    from ..models.llamagen import decode_image_tokens

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    images = []
    for start in range(0, len(labels), batch_size):
        batch = labels[start : start + batch_size].to(device)
        tokens = sampler.sample(model, class_labels=batch, generator=generator).image_token_ids
        images.append(to_uint8_images(decode_image_tokens(vq, tokens.to(vq.quant_conv.weight.device)), image_size))
    return np.concatenate(images)


@torch.no_grad()
def sample_caption_images(
    model,
    vq,
    text_encoder,
    tokenizer,
    prompts: Sequence[str],
    sampler,
    batch_size: int = 32,
    seed: int = 0,
    image_size: int | None = None,
) -> np.ndarray:
    """
    One image per prompt with a t2i generator: captions encoded by `text_encoder` (padded to the model's condition
    window, as [`~trl_ext.trainers.ARImageGRPOTrainer`] does), sampled, decoded. Returns `uint8 (N, H, W, 3)`.
    """
    from ..generation.image_tokens import encode_captions
    from ..models.llamagen import decode_image_tokens

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    images = []
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        embeds, mask, _ = encode_captions(model, text_encoder, tokenizer, batch, device)
        out = sampler.sample(model, caption_embeds=embeds, caption_mask=mask, generator=generator)
        pixels = decode_image_tokens(vq, out.image_token_ids.to(vq.quant_conv.weight.device))
        images.append(to_uint8_images(pixels, image_size))
    return np.concatenate(images)


# ----------------------------------------------------------------------------------------------------------------
# Prompts and rewards
# ----------------------------------------------------------------------------------------------------------------
def load_prompts(path: str | os.PathLike, column: str | None = None, max_prompts: int | None = None) -> list[str]:
    """
    Prompts from a `.txt` (one per line), a `.csv` / `.jsonl` / `.json` / `.parquet` file (DrawBench's CSV has
    `Prompts`), or a `save_to_disk` folder such as `python -m trl_ext.data.coco`'s. The column is `column`, else the
    first of `prompt`, `Prompt`, `Prompts`, `caption`, `text`.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`--prompts` {path!r} does not exist (a .txt/.csv/.jsonl file or a dataset folder).")
    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as handle:
            prompts = [line.strip() for line in handle if line.strip()]
    elif path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            name = _prompt_column(reader.fieldnames or [], column, path)
            prompts = [row[name] for row in reader]
    else:
        from ..data import load_prompt_dataset

        dataset = load_prompt_dataset(path)
        dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
        prompts = list(dataset[_prompt_column(dataset.column_names, column, path)])
    prompts = [str(p) for p in prompts if p is not None and str(p).strip()]
    if not prompts:
        raise ValueError(f"`--prompts` {path!r} holds no prompts.")
    return prompts[:max_prompts] if max_prompts else prompts


def _prompt_column(columns, column: str | None, path: str) -> str:
    columns = list(columns)
    if column is not None:
        if column not in columns:
            raise ValueError(f"`--prompt_column` {column!r} is not a column of {path!r} (columns: {columns}).")
        return column
    for name in PROMPT_COLUMNS:
        if name in columns:
            return name
    raise ValueError(f"No prompt column in {path!r} (columns: {columns}); set `--prompt_column`.")


def build_reward_terms(
    reward_funcs: Sequence[str] | None, reward_mix: str | None
) -> list[tuple[str, Callable, float]]:
    """
    `(name, reward, weight)` for each term: `reward_mix` (`"ar_grpo_t2i"`, `"ar_grpo_c2i"` or a
    [`~trl_ext.rewards.image.RewardMix`] YAML, which can point every reward at local weights) or `reward_funcs`
    (the names the AR-GRPO recipes accept, plus `pick_score` and `laion_aesthetic`), weight 1.
    """
    from ..rewards.image import AR_GRPO_REWARD_FUNCS, laion_aesthetic, pick_score
    from ..rewards.image.mix import load_reward_mix

    if reward_mix and reward_funcs:
        raise ValueError("Set `--reward_mix` or `--reward_funcs`, not both.")
    if reward_mix:
        mix = load_reward_mix(reward_mix, option="--reward_mix")
        return [(term.name, term.reward, term.weight) for term in mix.terms]
    available = {**AR_GRPO_REWARD_FUNCS, "pick_score": pick_score, "laion_aesthetic": laion_aesthetic}
    names = list(reward_funcs or [])
    unknown = [name for name in names if name not in available]
    if not names or unknown:
        raise ValueError(
            f"`--reward_funcs` must name rewards among {sorted(available)} (got {names}); or pass `--reward_mix` "
            "(a RewardMix YAML can point each reward at local weights)."
        )
    return [(name, available[name], 1.0) for name in names]


def score_images(
    images: np.ndarray,
    prompts: Sequence[str],
    terms: Sequence[tuple[str, Callable, float]],
    batch_size: int = 32,
    columns: dict[str, Sequence[Any]] | None = None,
) -> dict[str, list[float | None]]:
    """
    Each reward term's score of each image, by term name: `images[i]` was generated for `prompts[i]`, and the
    dataset `columns` (e.g. `class_label`) are passed per image like TRL passes a dataset's extra columns.
    """
    import asyncio
    import inspect

    from PIL import Image

    scores: dict[str, list[float | None]] = {name: [] for name, _, _ in terms}
    for start in range(0, len(images), batch_size):
        pil = [Image.fromarray(a) for a in images[start : start + batch_size]]
        batch_prompts = list(prompts[start : start + batch_size])
        batch_columns = {key: list(values[start : start + batch_size]) for key, values in (columns or {}).items()}
        for name, reward, _ in terms:
            output = reward(prompts=batch_prompts, completions=pil, completion_ids=None, **batch_columns)
            if inspect.isawaitable(output):
                output = asyncio.run(output)
            scores[name].extend(None if v is None or math.isnan(v) else float(v) for v in output)
    return scores


def class_names(num_classes: int) -> list[str]:
    """ImageNet-1k's WordNet lemmas (AR-GRPO's prompt text) for a 1000-class generator, else `"class {i}"`."""
    if num_classes == 1000:
        try:
            from ..rewards.image import imagenet_class_names

            return list(imagenet_class_names("lemmas"))
        except ImportError:  # timm missing: the lemma lists come from its ImageNet metadata
            pass
    return [f"class {i}" for i in range(num_classes)]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


# ----------------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------------
METRIC_NAMES = {
    "fid": "FID",
    "sfid": "sFID",
    "inception_score": "Inception Score",
    "precision": "Precision",
    "recall": "Recall",
}


def _metric_rows(summary: dict[str, dict[str, float]], task_type: str, dataset_type: str, dataset_name: str) -> list:
    rows = []
    for metrics in summary.values():
        for metric, value in metrics.items():
            if value is None:
                continue
            rows.append(
                {
                    "task_type": task_type,
                    "dataset_type": dataset_type,
                    "dataset_name": dataset_name,
                    "metric_type": metric,
                    "metric_name": METRIC_NAMES.get(metric, metric),
                    "metric_value": float(value),
                }
            )
    return rows


def report_markdown(report: dict[str, Any]) -> str:
    """The markdown of `report.md`: summary tables, settings, and the reward scores per prompt or per class."""
    lines = [f"# Image evaluation ({report['task']})", ""]
    lines += [f"Model: `{report['model']}`" if report["model"] else "Model: none (precomputed images)", ""]
    for benchmark, metrics in report["summary"].items():
        lines += [f"## {benchmark}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {METRIC_NAMES.get(k, k)} | {v:.4f} |" for k, v in metrics.items() if v is not None]
        lines.append("")
    lines += ["## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | `{value}` |" for key, value in report["settings"].items()]
    for section, key in (("per_prompt", "prompt"), ("per_class", "class_label")):
        rows = report.get(section)
        if not rows:
            continue
        names = list(rows[0]["scores"])
        lines += ["", f"## Per {key.replace('_', ' ')}", "", f"| {key} | " + " | ".join(names) + " |"]
        lines.append("|---" * (len(names) + 1) + "|")
        for row in rows:
            values = ["-" if row["scores"][n] is None else f"{row['scores'][n]:.4f}" for n in names]
            lines.append(f"| {str(row[key]).replace('|', '/')} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def write_report(output_dir: str | os.PathLike, report: dict[str, Any]) -> tuple[str, str]:
    """Write `<output_dir>/eval/report.json` and `report.md`; return both paths."""
    folder = os.path.join(os.fspath(output_dir), "eval")
    os.makedirs(folder, exist_ok=True)
    json_path, md_path = os.path.join(folder, "report.json"), os.path.join(folder, "report.md")
    with open(json_path, "w") as handle:
        json.dump(report, handle, indent=2)
    with open(md_path, "w") as handle:
        handle.write(report_markdown(report))
    return json_path, md_path


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ImageEvalArguments:
    """Arguments of `python -m trl_ext.eval.image` (every field is also a `--flag`)."""

    output_dir: str = field(metadata={"help": "The report, report.md and samples.npz go to <output_dir>/eval/."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A LlamaGen generator folder (c2i or t2i); omit with `--images`."}
    )
    vq_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Its VQ tokenizer; defaults to <model>/vq (how the recipes push it)."}
    )
    text_encoder_name_or_path: str | None = field(
        default=None,
        metadata={"help": "t2i: the T5 encoder (and tokenizer); defaults to <model>/text_encoder, else FLAN-T5-XL."},
    )
    images: str | None = field(
        default=None, metadata={"help": "Score precomputed samples instead: an ADM-layout .npz or an image folder."}
    )
    # c2i
    reference_batch: str | None = field(
        default=None,
        metadata={
            "help": f"ADM reference batch (.npz with arr_0), e.g. VIRTUAL_imagenet256_labeled.npz from "
            f"{ADM_REFERENCE_BATCH_URL}."
        },
    )
    reference_features_cache: str | None = field(
        default=None,
        metadata={"help": "An .npz caching the reference batch's Inception features (reused when it matches)."},
    )
    inception_weights: str | None = field(
        default=None,
        metadata={
            "help": f"torch-fidelity's InceptionV3 weights file ({INCEPTION_WEIGHTS_URL}); or set "
            f"{INCEPTION_WEIGHTS_ENV}."
        },
    )
    num_classes: int | None = field(default=None, metadata={"help": "c2i: evaluate the first this many classes."})
    class_ids: list[int] | None = field(default=None, metadata={"help": "c2i: evaluate these classes instead."})
    images_per_class: int = field(default=50, metadata={"help": "c2i: images per class (ADM/LlamaGen: 50k total)."})
    sample_only: bool = field(default=False, metadata={"help": "c2i: write samples.npz, compute no metrics."})
    # t2i
    prompts: str | None = field(
        default=None, metadata={"help": "t2i: prompt file (.txt/.csv/.jsonl) or a trl_ext.data.coco folder."}
    )
    prompt_column: str | None = field(default=None, metadata={"help": "Column of the prompts (auto-detected)."})
    max_prompts: int | None = field(default=None, metadata={"help": "Keep the first this many prompts."})
    images_per_prompt: int = field(default=1, metadata={"help": "t2i: images per prompt (scores are averaged)."})
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={"help": "Reward names to score with: t2i against the prompts, c2i against 'a photo of {class}'."},
    )
    reward_mix: str | None = field(
        default=None, metadata={"help": "t2i: 'ar_grpo_t2i' or a RewardMix YAML (local weights per reward)."}
    )
    # sampling (None: LlamaGen's evaluation defaults for the task)
    cfg_scale: float | None = field(default=None, metadata={"help": "CFG scale (c2i 1.5, t2i 7.5)."})
    cfg_schedule: str | None = field(default=None, metadata={"help": "'constant' (default) or 'linear'."})
    cfg_interval: int | None = field(default=None, metadata={"help": "Guide only the first tokens."})
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature (1.0)."})
    top_k: int | None = field(default=None, metadata={"help": "Top-k (c2i none, t2i 1000); 0 disables."})
    top_p: float | None = field(default=None, metadata={"help": "Top-p (none)."})
    image_size_eval: int | None = field(
        default=None,
        metadata={
            "help": "Resize samples to this side (bicubic, as LlamaGen); default 256 for c2i (LlamaGen's "
            "--image-size-eval), the model's size for t2i; 0 keeps the model's size."
        },
    )
    batch_size: int = field(default=32, metadata={"help": "Images per sampling batch."})
    metrics_batch_size: int = field(default=50, metadata={"help": "Images per Inception forward."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (and the class order)."})
    device: str | None = field(default=None, metadata={"help": "Defaults to cuda when available."})
    dtype: str = field(default="float32", metadata={"help": "Generator dtype: float32, bfloat16 or float16."})
    benchmark_name: str | None = field(
        default=None, metadata={"help": "Key of the summary (default: imagenet<size> or the prompt file's name)."}
    )


def _check_arguments(args: ImageEvalArguments) -> str:
    """Fail before loading anything: the task, and the files each task needs. Returns the task."""
    if (args.model_name_or_path is None) == (args.images is None):
        raise ValueError("Pass exactly one of `--model_name_or_path` (sample, then score) and `--images` (score).")
    if args.images is None:
        from ..models.llamagen import LlamaGenConfig

        config = LlamaGenConfig.from_pretrained(args.model_name_or_path)
        task = config.condition_type
        if task == "c2i":
            bad = [c for c in args.class_ids or [] if not 0 <= c < config.num_classes]
            if bad:
                raise ValueError(f"`--class_ids` {bad} lie outside the generator's classes [0, {config.num_classes}).")
            if args.num_classes is not None and not 0 < args.num_classes <= config.num_classes:
                raise ValueError(f"`--num_classes` must be in [1, {config.num_classes}] (the generator's classes).")
    else:
        task = "images"
        if not os.path.exists(args.images):
            raise FileNotFoundError(f"`--images` {args.images!r} does not exist (an .npz or an image folder).")
        if args.reference_batch is None and args.prompts is None:
            raise ValueError("`--images` needs `--reference_batch` (FID/IS/...) and/or `--prompts` (rewards).")
    wants_metrics = not args.sample_only and (args.reference_batch is not None or task == "c2i")
    if wants_metrics:
        if args.reference_batch is None:
            raise ValueError(
                "c2i evaluation needs `--reference_batch`: ADM's VIRTUAL_imagenet256_labeled.npz "
                f"({ADM_REFERENCE_BATCH_URL}) or any .npz with uint8 images in `arr_0`; or `--sample_only`."
            )
        if not os.path.isfile(args.reference_batch):
            raise FileNotFoundError(f"`--reference_batch` {args.reference_batch!r} is not a file.")
        resolve_inception_weights(args.inception_weights)
    if task == "c2i" and (args.reward_funcs or args.reward_mix):
        build_reward_terms(args.reward_funcs, args.reward_mix)
    if task == "t2i" or (task == "images" and args.prompts is not None):
        if args.prompts is None:
            raise ValueError(
                "t2i evaluation needs `--prompts` (a .txt/.csv/.jsonl file or a trl_ext.data.coco folder)."
            )
        build_reward_terms(args.reward_funcs, args.reward_mix)  # names checked now; weights load on first call
    for name in ("images_per_class", "images_per_prompt", "batch_size", "metrics_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}.")
    return task


def _load_generator(args: ImageEvalArguments, device: torch.device):
    from transformers import JanusVQVAE

    from ..models.llamagen import LlamaGenForImageGeneration, check_image_tokenizer

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    model = LlamaGenForImageGeneration.from_pretrained(args.model_name_or_path, dtype=dtype).to(device).eval()
    vq_path = args.vq_model_name_or_path or os.path.join(args.model_name_or_path, "vq")
    if not os.path.exists(os.path.join(vq_path, "config.json")) and args.vq_model_name_or_path is None:
        raise ValueError(
            f"No VQ tokenizer at {vq_path!r}: pass `--vq_model_name_or_path` (a converted LlamaGen VQ folder)."
        )
    vq = JanusVQVAE.from_pretrained(vq_path).to(device).eval()
    check_image_tokenizer(vq, model.config.vocab_size, model.config.grid_size)
    return model, vq, vq_path


def _reward_report(images, per_image_prompts, terms, groups, batch_size, columns=None):
    """Mean score per term (and the weighted total of several terms) overall and per group of images."""
    scores = score_images(images, per_image_prompts, terms, batch_size, columns)
    weights = {name: weight for name, _, weight in terms}
    if len(terms) > 1:
        scores["weighted_total"] = [
            None
            if all(scores[n][i] is None for n in weights)
            else sum(weights[n] * (scores[n][i] or 0.0) for n in weights)
            for i in range(len(images))
        ]
    summary = {name: _mean(values) for name, values in scores.items()}
    rows = [
        {**key, "images": list(indices), "scores": {n: _mean([v[i] for i in indices]) for n, v in scores.items()}}
        for key, indices in groups
    ]
    return summary, rows


def evaluate(args: ImageEvalArguments) -> dict[str, Any]:
    """Run the evaluation `args` describes, write the report (and samples) under `<output_dir>/eval/`, return it."""
    from ..models.llamagen import vq_downsample_ratio

    task = _check_arguments(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    eval_dir = os.path.join(args.output_dir, "eval")
    settings: dict[str, Any] = {"task": task, "seed": args.seed}
    # LlamaGen evaluates c2i at 256 px whatever the model's size; t2i images are scored at the model's size.
    image_size = (256 if task == "c2i" else None) if args.image_size_eval is None else (args.image_size_eval or None)
    images_per_prompt = args.images_per_prompt
    labels = None
    prompts: list[str] | None = None
    if task == "images":
        images, labels = load_images(args.images)
        settings["images"] = os.path.abspath(args.images)
        samples_path = os.path.abspath(args.images)
        if args.prompts is not None:
            prompts = load_prompts(args.prompts, args.prompt_column, args.max_prompts)
            if len(images) % len(prompts):
                raise ValueError(
                    f"{len(images)} images for {len(prompts)} prompts: expected a multiple (images_per_prompt images "
                    "per prompt, prompt by prompt)."
                )
            images_per_prompt = len(images) // len(prompts)
    else:
        model, vq, vq_path = _load_generator(args, device)
        top_k = None if args.top_k == 0 else args.top_k
        sampler, sampling = make_sampler(
            task,
            cfg_scale=args.cfg_scale,
            cfg_schedule=args.cfg_schedule,
            cfg_interval=args.cfg_interval,
            temperature=args.temperature,
            top_k=top_k,
            top_p=args.top_p,
        )
        if args.top_k == 0:
            sampler.top_k = sampling["top_k"] = None
        settings.update(sampling)
        settings.update(
            {
                "model": args.model_name_or_path,
                "vq_model": vq_path,
                "image_size_eval": image_size,
                "model_image_size": model.config.grid_size * vq_downsample_ratio(vq),
                "dtype": args.dtype,
            }
        )
        num_model_classes = model.config.num_classes
        if task == "c2i":
            class_ids = args.class_ids or list(range(args.num_classes or model.config.num_classes))
            labels = balanced_class_labels(class_ids, args.images_per_class, args.seed)
            images = sample_class_images(model, vq, labels, sampler, args.batch_size, args.seed, image_size)
            settings.update({"num_classes": len(class_ids), "images_per_class": args.images_per_class})
            if args.class_ids:
                settings["class_ids"] = list(class_ids)
        else:
            from transformers import AutoTokenizer, T5EncoderModel

            prompts = load_prompts(args.prompts, args.prompt_column, args.max_prompts)
            encoder_path = args.text_encoder_name_or_path
            if encoder_path is None:
                local = os.path.join(args.model_name_or_path, "text_encoder")
                encoder_path = local if os.path.isdir(local) else "google/flan-t5-xl"
            tokenizer = AutoTokenizer.from_pretrained(encoder_path)
            text_encoder = T5EncoderModel.from_pretrained(encoder_path).to(device).eval()
            per_image = [p for p in prompts for _ in range(images_per_prompt)]
            images = sample_caption_images(
                model, vq, text_encoder, tokenizer, per_image, sampler, args.batch_size, args.seed, image_size
            )
            settings.update({"text_encoder": encoder_path, "images_per_prompt": images_per_prompt})
        del model
        samples_path = save_samples_npz(os.path.join(eval_dir, "samples.npz"), images, labels)
    settings["num_images"] = len(images)
    settings["image_shape"] = list(images.shape[1:])

    summary: dict[str, dict[str, float | None]] = {}
    model_index: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    terms: list = []
    if args.reference_batch is not None and not args.sample_only:
        extractor = InceptionFeatureExtractor(args.inception_weights, device, args.metrics_batch_size)
        reference, reference_shape = reference_features(extractor, args.reference_batch, args.reference_features_cache)
        metrics = compute_image_metrics(extractor(images), reference, device=device)
        is_imagenet = "imagenet" in os.path.basename(args.reference_batch).lower()
        size = f"{reference_shape[1]}x{reference_shape[2]}"
        benchmark = args.benchmark_name or (
            f"imagenet{reference_shape[1]}" if is_imagenet else Path(args.reference_batch).stem
        )
        summary[benchmark] = metrics
        settings.update(
            {
                "reference_batch": os.path.abspath(args.reference_batch),
                "reference_images": reference_shape[0],
                "inception": "torch-fidelity FeatureExtractorInceptionV3 (TF inception-2015-12-05)",
                "inception_weights": extractor.weights_path or INCEPTION_WEIGHTS_URL,
                "inception_score_split_size": 5000,
                "precision_recall_k": 3,
                "reference_statistics": "recomputed from arr_0 (the npz's precomputed TF mu/sigma are not used)",
            }
        )
        dataset = ("ILSVRC/imagenet-1k", f"ImageNet {size}") if is_imagenet else (benchmark, benchmark)
        model_index += _metric_rows({benchmark: metrics}, "image-generation", *dataset)
    if prompts is not None:
        terms = build_reward_terms(args.reward_funcs, args.reward_mix)
        per_image = [p for p in prompts for _ in range(images_per_prompt)]
        groups = [
            ({"prompt": p}, range(i * images_per_prompt, (i + 1) * images_per_prompt)) for i, p in enumerate(prompts)
        ]
        rewards, details["per_prompt"] = _reward_report(images, per_image, terms, groups, args.batch_size)
        benchmark = args.benchmark_name or Path(args.prompts.rstrip("/")).stem
        settings.update({"prompts": os.path.abspath(args.prompts), "num_prompts": len(prompts)})
    elif task == "c2i" and (args.reward_funcs or args.reward_mix):
        # AR-GRPO's text for class-conditional rewards: "a photo of {class}", and the `class_label` column.
        terms = build_reward_terms(args.reward_funcs, args.reward_mix)
        names = class_names(num_model_classes)
        per_image = [f"a photo of {names[label]}" for label in labels]
        groups = [
            ({"class_label": int(c)}, np.flatnonzero(labels == c).tolist()) for c in sorted(set(labels.tolist()))
        ]
        rewards, details["per_class"] = _reward_report(
            images,
            per_image,
            terms,
            groups,
            args.batch_size,
            # The rewards template `class_name` before `class_label` (whose names would be ImageNet's whatever the
            # generator's classes); a mix with `class_column: class_label` reads the labels.
            {"class_name": [names[label] for label in labels], "class_label": labels.tolist()},
        )
        benchmark = args.benchmark_name or "class_prompts"
    if terms:
        if benchmark in summary:  # --benchmark_name shared with the FID numbers
            benchmark = f"{benchmark}-rewards"
        summary[benchmark] = rewards
        settings.update(
            {
                "reward_funcs": [name for name, _, _ in terms],
                "reward_weights": [weight for _, _, weight in terms],
            }
        )
        if args.reward_mix:
            settings["reward_mix"] = args.reward_mix
        task_type = "image-generation" if task == "c2i" else "text-to-image"
        model_index += _metric_rows({benchmark: rewards}, task_type, benchmark, benchmark)
    report = {
        "kind": "image",
        "evaluator": "trl_ext.eval.image",
        "model": args.model_name_or_path,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "settings": settings,
        "summary": summary,
        "model_index": model_index,
        "samples": samples_path,
        **details,
    }
    write_report(args.output_dir, report)
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(ImageEvalArguments).parse_args_into_dataclasses(args=argv)
    report = evaluate(args)
    print(report_markdown(report).split("## Settings")[0].rstrip())
    print(f"\nReport written to {os.path.join(args.output_dir, 'eval', 'report.json')}")
    return report


__all__ = [
    "ADM_REFERENCE_BATCH_URL",
    "C2I_SAMPLING",
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_URL",
    "ImageEvalArguments",
    "InceptionFeatureExtractor",
    "InceptionFeatures",
    "T2I_SAMPLING",
    "balanced_class_labels",
    "build_reward_terms",
    "compute_image_metrics",
    "evaluate",
    "fid_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "inception_score",
    "load_images",
    "load_prompts",
    "make_sampler",
    "precision_recall",
    "reference_features",
    "report_markdown",
    "sample_caption_images",
    "sample_class_images",
    "save_samples_npz",
    "score_images",
    "to_uint8_images",
    "write_report",
]

if __name__ == "__main__":
    main()
