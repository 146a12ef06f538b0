"""
`python -m trl_ext.eval.image`: FID/sFID/IS/precision/recall checked against torch-fidelity's own top-level API and
against slow, obviously-right numpy versions; the c2i (tiny LlamaGen -> npz -> metrics -> report) and t2i (tiny
LlamaGen -> rewards of tiny local reward models -> report) runs through the command line; the early errors.

Everything is offline: InceptionV3 has random weights in torch-fidelity's exact layout (saved, then loaded by path
through torch-fidelity's strict loader). InceptionV3 at 299 px is slow on CPUs, so the images are few and their
features are computed once per module.
"""

import json
import os

import numpy as np
import pytest
import torch
import yaml

torch_fidelity = pytest.importorskip("torch_fidelity", reason="the `eval` extra (torch-fidelity) is not installed")

from trl_ext.eval.image import (  # noqa: E402
    INCEPTION_WEIGHTS_URL,
    ImageEvalArguments,
    InceptionFeatureExtractor,
    InceptionFeatures,
    compute_image_metrics,
    evaluate,
    fid_statistics,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    load_images,
    load_prompts,
    main,
    precision_recall,
    save_samples_npz,
)
from trl_ext.testing_image import (  # noqa: E402
    make_tiny_llamagen,
    make_tiny_t5_encoder,
    make_tiny_vq,
    save_random_inception_weights,
    save_tiny_image_models,
)

NOISE_LEVELS = (0.0, 16.0, 48.0, 128.0)  # pixel std added to the clean batch
NUM_IMAGES = 6


def smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Images with structure (bilinearly upsampled 4x4 colour fields), so that added noise is a real change."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=generator)
    high = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (high * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def add_noise(images: np.ndarray, std: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, std, images.shape)
    return np.clip(images.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


class ImageArrayDataset(torch.utils.data.Dataset):
    """uint8 (N, H, W, 3) images as the uint8 (3, H, W) tensors torch-fidelity's API takes."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    return save_random_inception_weights(tmp_path_factory.mktemp("inception") / "inception.pth")


@pytest.fixture(scope="module")
def extractor(inception_weights):
    return InceptionFeatureExtractor(inception_weights, batch_size=NUM_IMAGES)


@pytest.fixture(scope="module")
def batches():
    clean = smooth_images(NUM_IMAGES)
    return {std: clean if std == 0 else add_noise(clean, std) for std in NOISE_LEVELS}


@pytest.fixture(scope="module")
def features(extractor, batches):
    return {std: extractor(images) for std, images in batches.items()}


# --------------------------------------------------------------------------------------------------------------------
# FID behaviour
# --------------------------------------------------------------------------------------------------------------------
def test_fid_of_a_batch_against_itself_is_zero_whatever_the_batching(extractor, batches, features):
    again = InceptionFeatureExtractor(extractor.weights_path, batch_size=3)(batches[0.0])  # other batch boundaries
    np.testing.assert_allclose(again.pool, features[0.0].pool, rtol=1e-4, atol=1e-5)
    metrics = compute_image_metrics(again, features[0.0])
    assert abs(metrics["fid"]) < 1e-3 * np.trace(np.cov(features[0.0].pool, rowvar=False))
    assert abs(metrics["sfid"]) < 1e-3 * np.trace(np.cov(features[0.0].spatial, rowvar=False))
    assert metrics["precision"] == metrics["recall"] == 1.0


def test_fid_and_sfid_grow_monotonically_with_noise(features):
    fids = [frechet_distance_from_features(features[std].pool, features[0.0].pool) for std in NOISE_LEVELS]
    sfids = [frechet_distance_from_features(features[std].spatial, features[0.0].spatial) for std in NOISE_LEVELS]
    print("FID by noise std", dict(zip(NOISE_LEVELS, fids)), "sFID", dict(zip(NOISE_LEVELS, sfids)))
    assert abs(fids[0]) < 1e-6 * max(fids)
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert all(a < b for a, b in zip(sfids, sfids[1:])), sfids


# --------------------------------------------------------------------------------------------------------------------
# Against torch-fidelity's own computation and slow references
# --------------------------------------------------------------------------------------------------------------------
def test_fid_and_is_agree_with_torch_fidelity_calculate_metrics(inception_weights, batches, features):
    """
    The same images and the same (random, local) weights through torch-fidelity's top-level API: its FID (2048-d
    `pool_3`, eigenvalues of the non-symmetric product) and its IS (`logits_unbiased`, one split, no shuffle, which
    is ADM's protocol below 5,000 images) vs ours. Tolerance: 1e-4 relative for FID (measured 5e-6: its eigenvalue
    route sums square roots of ~2000 round-off eigenvalues of a rank-5 product; ours is exact), 1e-6 for IS
    (measured equal to 10 digits).
    """
    noisy = NOISE_LEVELS[1]
    theirs = torch_fidelity.calculate_metrics(
        input1=ImageArrayDataset(batches[noisy]),
        input2=ImageArrayDataset(batches[0.0]),
        fid=True,
        isc=True,
        isc_splits=1,
        samples_shuffle=False,
        feature_extractor_weights_path=inception_weights,
        cuda=False,
        batch_size=NUM_IMAGES,
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )
    ours_fid = frechet_distance_from_features(features[noisy].pool, features[0.0].pool)
    ours_is = inception_score(features[noisy].logits)
    print(f"FID ours {ours_fid:.8g} torch-fidelity {theirs['frechet_inception_distance']:.8g}")
    print(f"IS ours {ours_is:.10g} torch-fidelity {theirs['inception_score_mean']:.10g}")
    assert ours_fid == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert ours_is == pytest.approx(theirs["inception_score_mean"], rel=1e-6)


def test_precision_recall_agree_with_torch_fidelity():
    from torch_fidelity.metric_prc import prc_features_to_metric

    rng = np.random.default_rng(0)
    reference, samples = rng.normal(size=(60, 16)), rng.normal(0.5, 1.2, size=(50, 16))
    precision, recall = precision_recall(reference, samples, k=3, chunk=7)  # chunks that split the rows
    theirs = prc_features_to_metric(
        torch.tensor(samples, dtype=torch.float32),
        torch.tensor(reference, dtype=torch.float32),
        prc_neighborhood=3,
        prc_batch_size=10000,
        save_cpu_ram=False,
        verbose=False,
    )
    # Same memberships: only the float32 mean of torch-fidelity differs (1e-8).
    assert (precision, recall) == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-6)
    assert 0 < precision < 1 and 0 < recall < 1


def slow_frechet_distance(x1, x2):
    """The textbook formula with numpy only, loops for the statistics, and sqrtm of sigma1 sigma2 by eigenvectors."""
    mu1 = sum(row for row in x1) / len(x1)
    mu2 = sum(row for row in x2) / len(x2)
    sigma1 = sum(np.outer(row - mu1, row - mu1) for row in x1) / (len(x1) - 1)
    sigma2 = sum(np.outer(row - mu2, row - mu2) for row in x2) / (len(x2) - 1)
    values, vectors = np.linalg.eig(sigma1 @ sigma2)
    covmean = (vectors * np.sqrt(values.astype(complex))) @ np.linalg.inv(vectors)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


@pytest.mark.parametrize("shape1,shape2", [((200, 16), (150, 16)), ((12, 64), (9, 64))])
def test_frechet_distance_matches_slow_reference(shape1, shape2):
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=shape1) @ rng.normal(size=(shape1[1], shape1[1]))
    x2 = rng.normal(0.3, 1.0, size=shape2) @ rng.normal(size=(shape1[1], shape1[1]))
    slow = slow_frechet_distance(x1, x2)
    assert frechet_distance_from_features(x1, x2) == pytest.approx(slow, rel=1e-6)
    assert frechet_distance(*fid_statistics(x1), *fid_statistics(x2)) == pytest.approx(slow, rel=1e-6)


def test_inception_score_matches_slow_reference_with_splits():
    logits = np.random.default_rng(0).normal(0, 3, size=(23, 10))

    def slow(part):
        p = np.exp(part) / np.exp(part).sum(1, keepdims=True)
        marginal = p.mean(0)
        return np.exp(np.mean([np.sum(row * (np.log(row) - np.log(marginal))) for row in p]))

    expected = np.mean([slow(logits[0:10]), slow(logits[10:20]), slow(logits[20:23])])
    assert inception_score(logits, split_size=10) == pytest.approx(expected, rel=1e-10)


@pytest.mark.skipif(
    not (
        os.environ.get("TRL_EXT_INCEPTION_WEIGHTS")
        and os.environ.get("TRL_EXT_CIFAR10_TRAIN_5000")
        and os.environ.get("TRL_EXT_CIFAR10_VALID_5000")
    ),
    reason="torch-fidelity's reference number needs its real InceptionV3 weights (TRL_EXT_INCEPTION_WEIGHTS, from "
    f"{INCEPTION_WEIGHTS_URL}) and the first 5000 CIFAR-10 train/valid images as PNG folders "
    "(TRL_EXT_CIFAR10_TRAIN_5000 / TRL_EXT_CIFAR10_VALID_5000, written by torch-fidelity's "
    "utils/util_dump_dataset_as_images.py); neither download is reachable offline",
)
def test_fid_reproduces_torch_fidelity_reference_number_on_cifar10():
    """torch-fidelity's tests/precision/test_metric_fid_fidelity.py: FID 10.3233274 (TF/TTUR agree to 1e-6 rel)."""
    extractor = InceptionFeatureExtractor(os.environ["TRL_EXT_INCEPTION_WEIGHTS"], batch_size=100)
    train, _ = load_images(os.environ["TRL_EXT_CIFAR10_TRAIN_5000"])
    valid, _ = load_images(os.environ["TRL_EXT_CIFAR10_VALID_5000"])
    fid = frechet_distance_from_features(extractor(train).pool, extractor(valid).pool)
    assert fid == pytest.approx(10.3233274, rel=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# End to end through the command line
# --------------------------------------------------------------------------------------------------------------------
def test_c2i_end_to_end_through_the_cli(tmp_path, inception_weights, capsys):
    gpt, vq = save_tiny_image_models(make_tiny_llamagen(), make_tiny_vq(), tmp_path / "models")
    reference = tmp_path / "VIRTUAL_imagenet16_labeled.npz"
    ref_images = smooth_images(5, size=16, seed=3)
    # ADM's reference batches also carry precomputed TF statistics: they must be ignored, not mixed in.
    np.savez(reference, ref_images, mu=np.zeros(2048), sigma=np.eye(2048))
    report = main(
        [
            "--model_name_or_path", gpt,
            "--vq_model_name_or_path", vq,
            "--output_dir", str(tmp_path / "run"),
            "--reference_batch", str(reference),
            "--inception_weights", inception_weights,
            "--class_ids", "1", "7",
            "--images_per_class", "2",
            "--image_size_eval", "16",
            "--batch_size", "4",
            "--metrics_batch_size", "5",
            "--reference_features_cache", str(tmp_path / "reference_features.npz"),
        ]
    )  # fmt: skip
    folder = tmp_path / "run" / "eval"
    images, labels = load_images(folder / "samples.npz")
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == [1, 1, 7, 7]
    with np.load(folder / "samples.npz") as data:
        assert data.files == ["arr_0", "arr_1"]  # ADM's layout
    saved = json.loads((folder / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["kind"] == "image" and saved["evaluator"] == "trl_ext.eval.image" and saved["model"] == gpt
    metrics = saved["summary"]["imagenet16"]
    assert set(metrics) == {"fid", "sfid", "inception_score", "precision", "recall"}
    assert metrics["fid"] > 0 and metrics["inception_score"] >= 1.0
    assert {row["metric_type"] for row in saved["model_index"]} == set(metrics)
    assert {(row["dataset_type"], row["dataset_name"]) for row in saved["model_index"]} == {
        ("ILSVRC/imagenet-1k", "ImageNet 16x16")
    }
    assert saved["settings"]["cfg_scale"] == 1.5 and saved["settings"]["top_k"] is None  # LlamaGen's eval defaults
    # The same samples scored again with --images: the same numbers (no generator, no resampling).
    again = evaluate(
        ImageEvalArguments(
            output_dir=str(tmp_path / "again"),
            images=str(folder / "samples.npz"),
            reference_batch=str(reference),
            inception_weights=inception_weights,
            metrics_batch_size=5,
            reference_features_cache=str(tmp_path / "reference_features.npz"),
        )
    )
    assert again["summary"]["imagenet16"] == pytest.approx(metrics)
    assert "| FID |" in (folder / "report.md").read_text()
    assert "FID" in capsys.readouterr().out
    # -> the model card: the metrics as a table and as model-index entries.
    (tmp_path / "run" / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\ntags: [trl]\npipeline_tag: unconditional-image-generation\n---\n\n"
        "# tiny\n\n## Training procedure\n\nTrained with trl_ext.\n"
    )
    from trl_ext.model_card import main as model_card_main

    model_card_main(["add-eval", str(tmp_path / "run")])
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| imagenet16 |" in card and "python -m trl_ext.eval.image" in card
    metadata = yaml.safe_load(card.split("---")[1])
    assert {m["type"] for r in metadata["model-index"][0]["results"] for m in r["metrics"]} == set(metrics)


@pytest.fixture(scope="module")
def reward_mix(tmp_path_factory):
    from trl_ext.testing_rewards import save_tiny_aesthetic_mlp, save_tiny_transformers_clip

    root = tmp_path_factory.mktemp("rewards")
    clip = save_tiny_transformers_clip(root / "clip")
    aesthetic = save_tiny_aesthetic_mlp(root / "aesthetic.pth", input_size=16)
    path = root / "mix.yaml"
    path.write_text(
        "mix: {clip_score: 5.0, pick_score: 1.0, laion_aesthetic: 1.0}\n"
        f"rewards:\n  clip_score: {{model: {clip}}}\n  pick_score: {{model: {clip}, processor: {clip}}}\n"
        f"  laion_aesthetic: {{mlp: {aesthetic}, repo_id: null, clip_model: {clip}, hidden_sizes: [32, 16, 8, 4]}}\n"
        "common: {device: cpu}\n"
    )
    return str(path)


def test_t2i_end_to_end_through_the_cli_with_tiny_reward_models(tmp_path, reward_mix):
    from trl_ext.testing import make_tokenizer

    model = make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=8)
    gpt, _ = save_tiny_image_models(model, make_tiny_vq(), tmp_path / "model")
    tokenizer = make_tokenizer(with_mask_token=False)
    make_tiny_t5_encoder(len(tokenizer), d_model=16).save_pretrained(os.path.join(gpt, "text_encoder"))
    tokenizer.save_pretrained(os.path.join(gpt, "text_encoder"))
    prompts = tmp_path / "drawbench.csv"
    prompts.write_text('Prompts,Category\n"a red apple",Colors\n"two dogs on a beach",Counting\n"a blue car",Colors\n')
    report = main(
        [
            "--model_name_or_path", gpt,
            "--vq_model_name_or_path", os.path.join(tmp_path, "model", "vq"),
            "--output_dir", str(tmp_path / "run"),
            "--prompts", str(prompts),
            "--images_per_prompt", "2",
            "--reward_mix", reward_mix,
            "--image_size_eval", "32",
        ]
    )  # fmt: skip
    assert report["settings"]["cfg_scale"] == 7.5 and report["settings"]["top_k"] == 1000
    assert report["settings"]["text_encoder"] == os.path.join(gpt, "text_encoder")
    summary = report["summary"]["drawbench"]
    assert set(summary) == {"clip_score", "pick_score", "laion_aesthetic", "weighted_total"}
    rows = report["per_prompt"]
    assert [row["prompt"] for row in rows] == ["a red apple", "two dogs on a beach", "a blue car"]
    assert [row["images"] for row in rows] == [[0, 1], [2, 3], [4, 5]]
    for name in ("clip_score", "pick_score", "laion_aesthetic"):
        assert summary[name] == pytest.approx(np.mean([row["scores"][name] for row in rows]))
    total = 5.0 * summary["clip_score"] + summary["pick_score"] + summary["laion_aesthetic"]
    assert summary["weighted_total"] == pytest.approx(total)
    assert {row["metric_type"] for row in report["model_index"]} == set(summary)
    images, labels = load_images(tmp_path / "run" / "eval" / "samples.npz")
    assert images.shape == (6, 32, 32, 3) and labels is None
    markdown = (tmp_path / "run" / "eval" / "report.md").read_text()
    assert "two dogs on a beach" in markdown and "pick_score" in markdown
    # The same images as a folder of PNGs, scored without the generator: the same per-prompt scores.
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")
    again = main(["--images", str(folder), "--prompts", str(prompts), "--reward_mix", reward_mix,
                  "--output_dir", str(tmp_path / "again")])  # fmt: skip
    assert again["summary"]["drawbench"] == pytest.approx(summary)


def test_c2i_rewards_per_class_with_class_prompts(tmp_path, reward_mix):
    """c2i images scored like AR-GRPO's c2i rewards: the text "a photo of {class}" and the `class_label` column."""
    from trl_ext.eval.image import build_reward_terms, score_images

    gpt, vq = save_tiny_image_models(make_tiny_llamagen(), make_tiny_vq(), tmp_path / "models")
    report = main(
        ["--model_name_or_path", gpt, "--vq_model_name_or_path", vq, "--output_dir", str(tmp_path / "run"),
         "--num_classes", "2", "--images_per_class", "3", "--sample_only", "--reward_mix", reward_mix,
         "--image_size_eval", "0"]
    )  # fmt: skip
    images, labels = load_images(tmp_path / "run" / "eval" / "samples.npz")
    assert images.shape == (6, 8, 8, 3) and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    expected = score_images(
        images, [f"a photo of class {c}" for c in labels], build_reward_terms(None, reward_mix), 32
    )
    rows = {row["class_label"]: row for row in report["per_class"]}
    for c in (0, 1):
        mine = [i for i in range(6) if labels[i] == c]
        assert rows[c]["images"] == mine
        assert rows[c]["scores"]["clip_score"] == pytest.approx(np.mean([expected["clip_score"][i] for i in mine]))
    assert report["summary"]["class_prompts"]["pick_score"] == pytest.approx(np.mean(expected["pick_score"]))
    assert "## Per class label" in (tmp_path / "run" / "eval" / "report.md").read_text()


def test_reference_features_cache_is_reused_only_for_the_same_files(tmp_path, inception_weights):
    from trl_ext.eval.image import reference_features

    class Recorder:
        weights_path = inception_weights

        def __init__(self):
            self.calls = 0

        def __call__(self, images):
            self.calls += 1
            n = len(images)
            return InceptionFeatures(np.full((n, 2048), 1.0), np.zeros((n, 1008)), np.zeros((n, 2023)))

    reference = save_samples_npz(tmp_path / "ref.npz", smooth_images(4, size=8))
    cache = str(tmp_path / "cache.npz")
    extractor = Recorder()
    first, shape = reference_features(extractor, reference, cache)
    again, shape_again = reference_features(extractor, reference, cache)
    assert extractor.calls == 1 and shape == shape_again == (4, 8, 8, 3)
    np.testing.assert_array_equal(first.pool, again.pool)
    os.utime(reference, (1, 1))  # a changed reference file: recomputed
    reference_features(extractor, reference, cache)
    assert extractor.calls == 2


# --------------------------------------------------------------------------------------------------------------------
# Inputs and early errors
# --------------------------------------------------------------------------------------------------------------------
def test_prompt_files(tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n\n a dog \n")
    assert load_prompts(tmp_path / "p.txt") == ["a cat", "a dog"]
    (tmp_path / "p.jsonl").write_text('{"caption": "x", "id": 1}\n{"caption": "y", "id": 2}\n')
    assert load_prompts(tmp_path / "p.jsonl", max_prompts=1) == ["x"]
    with pytest.raises(ValueError, match="--prompt_column"):
        load_prompts(tmp_path / "p.jsonl", column="Prompt")
    from datasets import Dataset

    Dataset.from_dict({"prompt": ["p1", "p2"], "caption": ["c1", "c2"]}).save_to_disk(tmp_path / "coco")
    assert load_prompts(tmp_path / "coco", column="caption") == ["c1", "c2"]


def test_npz_layout_checks(tmp_path):
    np.savez(tmp_path / "float.npz", np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_images(tmp_path / "float.npz")
    np.savez(tmp_path / "named.npz", images=np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="arr_0"):
        load_images(tmp_path / "named.npz")
    path = save_samples_npz(tmp_path / "ok.npz", np.zeros((2, 8, 8, 3), dtype=np.uint8), [3, 5])
    assert load_images(path)[1].tolist() == [3, 5]


def test_offline_without_inception_weights_fails_early_naming_the_option(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("TRL_EXT_INCEPTION_WEIGHTS", raising=False)
    images = save_samples_npz(tmp_path / "s.npz", np.zeros((4, 8, 8, 3), dtype=np.uint8))
    args = ImageEvalArguments(output_dir=str(tmp_path), images=images, reference_batch=images)
    with pytest.raises(ValueError, match="--inception_weights") as error:
        evaluate(args)
    assert INCEPTION_WEIGHTS_URL in str(error.value)
    args.inception_weights = str(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="is not a file"):
        evaluate(args)


def test_c2i_without_reference_batch_fails_before_sampling(tmp_path):
    gpt, vq = save_tiny_image_models(make_tiny_llamagen(), make_tiny_vq(), tmp_path / "models")
    args = ImageEvalArguments(output_dir=str(tmp_path), model_name_or_path=gpt, vq_model_name_or_path=vq)
    with pytest.raises(ValueError, match="--reference_batch"):
        evaluate(args)
    args.sample_only, args.class_ids = True, [3, 10]
    with pytest.raises(ValueError, match=r"--class_ids` \[10\]"):
        evaluate(args)
    assert not (tmp_path / "eval").exists()


def test_unknown_reward_names_fail_early(tmp_path):
    images = save_samples_npz(tmp_path / "s.npz", np.zeros((2, 8, 8, 3), dtype=np.uint8))
    (tmp_path / "p.txt").write_text("a\nb\n")
    args = ImageEvalArguments(
        output_dir=str(tmp_path), images=images, prompts=str(tmp_path / "p.txt"), reward_funcs=["clip_scor"]
    )
    with pytest.raises(ValueError, match="clip_score"):
        evaluate(args)
