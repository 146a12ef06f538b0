"""
Image rewards: every model-backed reward is built at toy size with random weights, saved in its real checkpoint
format, loaded back through the code path a Hub id takes, and checked against a slow, per-image computation with
the official preprocessing; plus preprocessing parity, input formats, text sources, pickling, weight-free rewards,
the step bonus and the reward mix.
"""

from __future__ import annotations

import colorsys
import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("open_clip")
pytest.importorskip("torchvision")

import open_clip  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from transformers import AutoProcessor, CLIPModel  # noqa: E402

from trl_ext.rewards.image import (  # noqa: E402
    AR_GRPO_STEP_THRESHOLDS,
    AR_GRPO_STEP_VALUES,
    MANIQA,
    AestheticMLP,
    ColourStatisticReward,
    ImagePreprocess,
    JpegCompressibilityReward,
    ManiqaConfig,
    RewardMix,
    StepBonus,
    TextSource,
    clear_scorer_cache,
    colourfulness,
    crop_boxes,
    imagenet_class_names,
    make_clip_score_reward,
    make_hps_v2_reward,
    make_laion_aesthetic_reward,
    make_maniqa_reward,
    make_pick_score_reward,
    saturation,
    step_bonus,
    to_uint8_image,
)
from trl_ext.testing_rewards import (  # noqa: E402
    make_test_images,
    make_tiny_clip_processor,
    save_tiny_aesthetic_mlp,
    save_tiny_hps,
    save_tiny_maniqa,
    save_tiny_open_clip,
    save_tiny_transformers_clip,
    tiny_maniqa_config,
)

CAPTIONS = ["a red car", "a photo of a dog", "two cats on a sofa", "a bowl of soup"] * 2


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("image_reward_models")
    hps_config, hps_checkpoint = save_tiny_hps(root / "hps")
    return {
        "clip": save_tiny_transformers_clip(root / "clip"),
        "open_clip": save_tiny_open_clip(root / "open_clip"),
        "hps_config": hps_config,
        "hps_checkpoint": hps_checkpoint,
        "aesthetic": save_tiny_aesthetic_mlp(root / "aesthetic.pth", input_size=16),
        "maniqa": save_tiny_maniqa(root / "maniqa.pt"),
    }


@pytest.fixture(autouse=True)
def _fresh_scorers():
    clear_scorer_cache()
    yield
    clear_scorer_cache()


@pytest.fixture(scope="module")
def images():
    return make_test_images(8, size=48, seed=1)


def build(kind, models, **kwargs):
    """Each reward exactly as a user builds it from a Hub id, here from the local twin of that id."""
    kwargs.setdefault("device", "cpu")
    if kind == "clip_transformers":
        return make_clip_score_reward(models["clip"], **kwargs)
    if kind == "clip_open_clip":
        return make_clip_score_reward(models["open_clip"], **kwargs)
    if kind == "hps_v2":
        return make_hps_v2_reward(models["hps_checkpoint"], model_name=models["hps_config"], repo_id=None, **kwargs)
    if kind == "pick_score":
        return make_pick_score_reward(models["clip"], processor=models["clip"], **kwargs)
    if kind == "laion_aesthetic":
        return make_laion_aesthetic_reward(
            models["aesthetic"], repo_id=None, clip_model=models["clip"], hidden_sizes=(32, 16, 8, 4), **kwargs
        )
    if kind == "maniqa":
        return make_maniqa_reward(models["maniqa"], repo_id=None, config=tiny_maniqa_config(), **kwargs)
    raise ValueError(kind)


MODEL_REWARDS = ["clip_transformers", "clip_open_clip", "hps_v2", "pick_score", "laion_aesthetic", "maniqa"]
TEXT_REWARDS = {"clip_transformers", "clip_open_clip", "hps_v2", "pick_score"}


# --------------------------------------------------------------------------------------------------------------------
# Slow, obviously-right references: the official preprocessing and one image at a time
# --------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def reference_scores(kind, models, images, texts):
    scores = []
    if kind in ("clip_transformers", "pick_score", "laion_aesthetic"):
        model = CLIPModel.from_pretrained(models["clip"]).eval()
        processor = AutoProcessor.from_pretrained(models["clip"])
        for image, text in zip(images, texts):
            image_features = model.get_image_features(**processor(images=image, return_tensors="pt")).pooler_output
            image_features = image_features / image_features.norm()
            if kind == "laion_aesthetic":
                mlp = AestheticMLP(16, (32, 16, 8, 4))
                mlp.load_state_dict(torch.load(models["aesthetic"]))
                scores.append(mlp.eval()(image_features).item())
                continue
            text_inputs = processor(text=[text], padding=True, truncation=True, max_length=77, return_tensors="pt")
            text_features = model.get_text_features(**text_inputs).pooler_output
            text_features = text_features / text_features.norm()
            cosine = (image_features * text_features).sum().item()
            scores.append(cosine * (model.logit_scale.exp().item() if kind == "pick_score" else 1.0))
    elif kind in ("clip_open_clip", "hps_v2"):
        if kind == "clip_open_clip":
            model, _, preprocess = open_clip.create_model_and_transforms(models["open_clip"])
            tokenizer = open_clip.get_tokenizer(models["open_clip"])
        else:  # HPSv2's loader and its validation transform (tensor first, then resize)
            open_clip.add_model_config(models["hps_config"])
            name = os.path.splitext(os.path.basename(models["hps_config"]))[0]
            model = open_clip.create_model(name, pretrained=None)
            model.load_state_dict(torch.load(models["hps_checkpoint"])["state_dict"])
            size = model.visual.image_size[0]
            preprocess = T.Compose(
                [
                    T.ToTensor(),
                    T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
                    T.CenterCrop(size),
                    T.Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD),
                ]
            )
            tokenizer = open_clip.get_tokenizer(name)
        model.eval()
        for image, text in zip(images, texts):
            image_features = model.encode_image(preprocess(image)[None], normalize=True)
            text_features = model.encode_text(tokenizer([text]), normalize=True)
            scores.append((image_features * text_features).sum().item())
    elif kind == "maniqa":
        config = tiny_maniqa_config()
        model = MANIQA(config).eval()
        model.load_state_dict(torch.load(models["maniqa"]))
        for image in images:
            x = (T.ToTensor()(image) - 0.5) / 0.5
            _, height, width = x.shape
            size = config.img_size
            # The official validation protocol (utils/process.py five_point_crop): four corners and the center.
            corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size)]
            corners.append((height // 2 - size // 2, width // 2 - size // 2))
            crops = [model(x[None, :, t : t + size, left : left + size]).item() for t, left in corners]
            scores.append(sum(crops) / len(crops))
    return scores


@pytest.mark.parametrize("kind", MODEL_REWARDS)
def test_model_reward_matches_reference_and_is_batch_invariant(kind, models, images):
    reward = build(kind, models)
    texts = CAPTIONS[: len(images)]
    batched = reward(prompts=texts, completions=images)
    assert len(batched) == len(images) and all(isinstance(s, float) for s in batched)

    expected = reference_scores(kind, models, images, texts)
    np.testing.assert_allclose(batched, expected, atol=1e-5, rtol=1e-5)

    # Batch of 1 vs batch of 8 (and a chunked batch of 3).
    single = [reward(prompts=[t], completions=[im])[0] for t, im in zip(texts, images)]
    np.testing.assert_allclose(single, batched, atol=1e-5, rtol=0)
    chunked = build(kind, models, batch_size=3)(prompts=texts, completions=images)
    np.testing.assert_allclose(chunked, batched, atol=1e-5, rtol=0)

    # Deterministic across a fresh load.
    clear_scorer_cache()
    again = build(kind, models)(prompts=texts, completions=images)
    assert again == batched

    # Sensitive to the image: distinct images, distinct scores.
    assert len({round(s, 7) for s in batched}) == len(batched)


@pytest.mark.parametrize("kind", sorted(TEXT_REWARDS))
def test_text_rewards_depend_on_the_text(kind, models, images):
    reward = build(kind, models)
    image = images[:1] * 2
    first, second = reward(prompts=["a red car", "a bowl of soup"], completions=image)
    assert abs(first - second) > 1e-6


def test_hub_ids_resolve_through_hf_hub_download(models, images, monkeypatch):
    requested = []
    files = {
        ("xswu/HPSv2", "HPS_v2.1_compressed.pt"): models["hps_checkpoint"],
        ("trl-lib/ddpo-aesthetic-predictor", "aesthetic-model.pth"): models["aesthetic"],
        ("chaofengc/IQA-PyTorch-Weights", "ckpt_koniq10k.pt"): models["maniqa"],
    }

    def fake_download(repo_id, filename, revision=None, **kwargs):
        requested.append((repo_id, filename))
        return files[(repo_id, filename)]

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    hps = make_hps_v2_reward(model_name=models["hps_config"], device="cpu")  # default checkpoint and repo
    aesthetic = make_laion_aesthetic_reward(clip_model=models["clip"], hidden_sizes=(32, 16, 8, 4), device="cpu")
    quality = make_maniqa_reward(config=tiny_maniqa_config(), device="cpu")
    for reward, kind in ((hps, "hps_v2"), (aesthetic, "laion_aesthetic"), (quality, "maniqa")):
        np.testing.assert_allclose(
            reward(prompts=CAPTIONS[:2], completions=images[:2]),
            build(kind, models)(prompts=CAPTIONS[:2], completions=images[:2]),
            atol=1e-6,
        )
    assert sorted(requested) == sorted(files)

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    clear_scorer_cache()
    with pytest.raises(OSError, match="Download it where the Hub is reachable"):
        make_hps_v2_reward(model_name=models["hps_config"], device="cpu")(prompts=["x"], completions=images[:1])


def test_rewards_accept_built_models(models, images):
    texts = CAPTIONS[:4]
    model = CLIPModel.from_pretrained(models["clip"])
    processor = AutoProcessor.from_pretrained(models["clip"])
    pairs = [
        (make_clip_score_reward(model, processor=processor, device="cpu"), "clip_transformers"),
        (make_pick_score_reward(model, processor=processor, device="cpu"), "pick_score"),
    ]
    open_clip_model = open_clip.create_model_and_transforms(models["open_clip"])[0]
    pairs.append((make_clip_score_reward(open_clip_model, device="cpu"), "clip_open_clip"))
    open_clip.add_model_config(models["hps_config"])
    hps_model = open_clip.create_model(os.path.splitext(os.path.basename(models["hps_config"]))[0])
    hps_model.load_state_dict(torch.load(models["hps_checkpoint"])["state_dict"])
    pairs.append((make_hps_v2_reward(model=hps_model, device="cpu"), "hps_v2"))
    mlp = AestheticMLP(16, (32, 16, 8, 4))
    mlp.load_state_dict(torch.load(models["aesthetic"]))
    pairs.append(
        (make_laion_aesthetic_reward(mlp, clip_model=model, processor=processor, device="cpu"), "laion_aesthetic")
    )
    maniqa_model = MANIQA(tiny_maniqa_config())
    maniqa_model.load_state_dict(torch.load(models["maniqa"]))
    pairs.append((make_maniqa_reward(maniqa_model, device="cpu"), "maniqa"))
    for reward, kind in pairs:
        np.testing.assert_allclose(
            reward(prompts=texts, completions=images[:4]),
            build(kind, models)(prompts=texts, completions=images[:4]),
            atol=1e-6,
            err_msg=kind,
        )
        with pytest.raises(TypeError, match="in-memory model"):
            pickle.dumps(reward)


def test_scorers_are_cached_per_process_and_not_pickled(models, images):
    first, second = build("clip_transformers", models), build("clip_transformers", models)
    assert first.scorer is second.scorer  # one model per process and device, shared
    assert build("clip_transformers", models, dtype=torch.float64).scorer is not first.scorer

    scores = first(prompts=CAPTIONS[:3], completions=images[:3])
    payload = pickle.dumps(first)
    assert len(payload) < 20_000  # the description travels, not the weights
    restored = pickle.loads(payload)
    assert restored._scorer is None
    assert restored(prompts=CAPTIONS[:3], completions=images[:3]) == scores


def test_reward_logs_its_mean_and_moves_device_lazily(models, images):
    logged = {}
    reward = build("clip_open_clip", models)
    assert reward._scorer is None  # nothing loaded before the first call
    scores = reward(prompts=CAPTIONS[:4], completions=images[:4], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"image_reward/clip_score/mean": pytest.approx(sum(scores) / 4)}
    assert reward.scorer.backbone.device == torch.device("cpu")
    reward.to(dtype=torch.float64)
    assert next(reward.scorer.backbone.model.parameters()).dtype == torch.float64
    np.testing.assert_allclose(reward(prompts=CAPTIONS[:4], completions=images[:4]), scores, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Preprocessing parity with the official processors
# --------------------------------------------------------------------------------------------------------------------


SIZES = [(48, 48), (61, 47), (47, 61), (32, 32), (100, 37), (33, 90)]


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_preprocessing_equals_transformers_clip_processor(backend):
    processor = make_tiny_clip_processor(image_size=32, backend=backend, resize=40)
    preprocess = ImagePreprocess.from_image_processor(processor)
    assert preprocess.mode == ("uint8" if backend == "torchvision" else "pil")
    for size in SIZES:
        pil_images = make_test_images(3, size=size)
        ours = preprocess([to_uint8_image(image) for image in pil_images], "cpu")
        official = processor(images=pil_images, return_tensors="pt")["pixel_values"]
        assert ours.shape == official.shape == (3, 3, 32, 32)
        torch.testing.assert_close(ours, official, atol=1e-5, rtol=0, msg=f"size {size}")


def test_preprocessing_equals_open_clip_transform(models):
    _, _, official = open_clip.create_model_and_transforms(models["open_clip"])
    model = open_clip.create_model(models["open_clip"])
    preprocess = ImagePreprocess.from_open_clip(model)
    for size in SIZES:
        pil_images = make_test_images(2, size=size) + [make_test_images(1, size=size)[0].convert("L")]
        ours = preprocess([to_uint8_image(image) for image in pil_images], "cpu")
        reference = torch.stack([official(image.convert("RGB")) for image in pil_images])
        torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0, msg=f"size {size}")


def test_hps_preprocessing_equals_hpsv2_transform():
    preprocess = ImagePreprocess(size=32, mode="float")
    reference = T.Compose(
        [
            T.ToTensor(),
            T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(32),
            T.Normalize(preprocess.mean, preprocess.std),
        ]
    )
    for size in SIZES:
        pil_images = make_test_images(3, size=size)
        ours = preprocess([to_uint8_image(image) for image in pil_images], "cpu")
        torch.testing.assert_close(ours, torch.stack([reference(im) for im in pil_images]), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# Inputs: image formats and texts
# --------------------------------------------------------------------------------------------------------------------


def test_image_formats_give_identical_scores(models, images):
    reward = build("clip_open_clip", models)
    texts = CAPTIONS[:4]
    pil = images[:4]
    uint8 = [torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in pil]
    unit = [x.float() / 255 for x in uint8]
    expected = reward(prompts=texts, completions=pil)
    for completions, value_range in (
        (uint8, (0, 1)),
        (unit, (0, 1)),
        ([x * 2 - 1 for x in unit], (-1, 1)),
        ([np.asarray(image) for image in pil], (0, 1)),
        ([np.asarray(image).astype(np.float32) / 255 for image in pil], (0, 1)),
        (torch.stack(unit), (0, 1)),
    ):
        scorer = build("clip_open_clip", models, value_range=value_range)
        assert scorer(prompts=texts, completions=completions) == expected


def test_bad_images_fail_clearly():
    with pytest.raises(ValueError, match=r"value_range=\(-1, 1\)"):
        to_uint8_image(torch.rand(3, 8, 8) * 2 - 1)
    with pytest.raises(ValueError, match="uint8"):
        to_uint8_image(torch.rand(3, 8, 8) * 255)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_uint8_image(torch.rand(8, 8, 3))
    with pytest.raises(TypeError, match="decoded images"):
        to_uint8_image("a cat")
    assert to_uint8_image(torch.full((3, 2, 2), 1.04)).eq(255).all()  # decoder overshoot is clamped
    assert to_uint8_image(Image.new("L", (5, 4), 7)).shape == (3, 4, 5)


def test_text_source():
    lemmas = imagenet_class_names("lemmas")
    assert len(lemmas) == 1000 and lemmas[0] == "tench, Tinca tinca"
    assert imagenet_class_names("clean")[7] == "rooster"
    source = TextSource()
    assert source.texts(["p"], {"class_label": [0]}, 1) == ["a photo of tench, Tinca tinca"]
    assert source.texts(["p"], {"class_label": [torch.tensor(2)]}, 1)[0].startswith("a photo of great white shark")
    assert source.texts(["p"], {"caption": ["a red car"], "class_label": [0]}, 1) == ["a red car"]
    assert source.texts(["p"], {"class_name": ["cat"]}, 1) == ["a photo of cat"]
    assert source.texts(["a dog"], {}, 1) == ["a dog"]
    custom = TextSource(class_column="label", template="an image of a {}", class_names=["cat", "dog"])
    assert custom.texts(None, {"label": [1, 0]}, 2) == ["an image of a dog", "an image of a cat"]
    with pytest.raises(KeyError, match="no column 'label'"):
        custom.texts(None, {"class_label": [1]}, 1)
    with pytest.raises(ValueError, match="outside"):
        custom.texts(None, {"label": [5]}, 1)
    with pytest.raises(KeyError, match="text_column="):
        source.texts([[{"role": "user", "content": "x"}]], {"trainer_state": None}, 1)
    with pytest.raises(ValueError, match="one text per completion"):
        source.texts(["a", "b"], {}, 3)
    with pytest.raises(ValueError, match="at most one"):
        TextSource(text_column="caption", class_column="label")


# --------------------------------------------------------------------------------------------------------------------
# MANIQA crops
# --------------------------------------------------------------------------------------------------------------------


def test_maniqa_crops_and_config():
    assert crop_boxes(256, 256, 224, "five") == [(0, 0), (0, 32), (32, 0), (32, 32), (16, 16)]
    assert crop_boxes(256, 300, 224, "center") == [(16, 38)]
    assert crop_boxes(256, 256, 224, 2) == [(0, 0), (0, 32), (32, 0), (32, 32)]
    with pytest.raises(ValueError, match="crops"):
        make_maniqa_reward(crops="random")
    with pytest.raises(ValueError, match="feature_layers"):
        ManiqaConfig(vit_depth=4)
    # The released network: ~136M parameters, as reported for MANIQA.
    with torch.device("meta"):
        released = MANIQA()
    assert 135e6 < sum(p.numel() for p in released.parameters()) < 137e6


def test_maniqa_upsizes_small_images(models):
    reward = build("maniqa", models)
    small = make_test_images(2, size=20)  # below the 32 px crop: resized up, then cropped
    scores = reward(prompts=None, completions=small)
    assert all(0 <= s for s in scores) and scores[0] != scores[1]


# --------------------------------------------------------------------------------------------------------------------
# Weight-free rewards
# --------------------------------------------------------------------------------------------------------------------


def test_jpeg_compressibility(images):
    buffer = io.BytesIO()
    images[0].save(buffer, format="JPEG", quality=95)
    kilobytes = len(buffer.getvalue()) / 1000
    assert JpegCompressibilityReward()(prompts=None, completions=images[:1]) == [-kilobytes]
    assert JpegCompressibilityReward(incompressible=True)(prompts=None, completions=images[:1]) == [kilobytes]
    bpp = JpegCompressibilityReward(unit="bpp")(prompts=None, completions=images[:1])[0]
    assert bpp == pytest.approx(-8 * kilobytes * 1000 / (48 * 48))
    flat, noisy = Image.new("RGB", (64, 64), (120, 30, 200)), make_test_images(1, size=64)[0]
    flat_score, noisy_score = JpegCompressibilityReward()(prompts=None, completions=[flat, noisy])
    assert flat_score > noisy_score


def test_saturation_and_colourfulness_match_slow_references(images):
    def slow_saturation(image):
        pixels = np.asarray(image).reshape(-1, 3) / 255
        return float(np.mean([colorsys.rgb_to_hsv(*p)[1] for p in pixels]))

    def slow_colourfulness(image):
        r, g, b = (np.asarray(image).astype(np.float64)[..., i] for i in range(3))
        rg, yb = r - g, 0.5 * (r + g) - b
        return np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)

    mixed = images[:3] + make_test_images(2, size=(30, 20)) + [Image.new("RGB", (9, 9), (0, 0, 0))]
    np.testing.assert_allclose(
        ColourStatisticReward("saturation")(prompts=None, completions=mixed),
        [slow_saturation(im) for im in mixed],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ColourStatisticReward("colourfulness")(prompts=None, completions=mixed),
        [slow_colourfulness(im) for im in mixed],
        rtol=1e-5,
    )
    grey = torch.full((1, 3, 4, 4), 90, dtype=torch.uint8)
    assert saturation(grey).item() == 0 and colourfulness(grey).item() == 0


# --------------------------------------------------------------------------------------------------------------------
# Step bonus and reward mix
# --------------------------------------------------------------------------------------------------------------------


def ar_grpo_discrete_reward_map(value, value_list, reward_list):
    """AR-GRPO's own mapping (img_gen_grpo_rewards.py), written out as it reads."""
    if value < value_list[0]:
        return reward_list[0]
    for index in range(len(value_list) - 1):
        if value_list[index] <= value < value_list[index + 1]:
            return reward_list[index + 1]
    return reward_list[len(value_list)]


def test_step_bonus_reproduces_ar_grpo():
    for value in [-0.5, -1e-9, 0.0, 0.1, 0.2999, 0.3, 0.45, 0.5999, 0.6, 0.75, 0.9999]:
        expected = ar_grpo_discrete_reward_map(value, [0, 0.3, 0.6, 1], [-1, 0.5, 1, 1.5])
        assert step_bonus(value) == expected == step_bonus(value, AR_GRPO_STEP_THRESHOLDS, AR_GRPO_STEP_VALUES)
    assert step_bonus(1.0) == 1.5  # AR-GRPO's lookup raises IndexError here
    with pytest.raises(ValueError, match="len\\(thresholds\\) \\+ 1"):
        StepBonus(ColourStatisticReward(), thresholds=[0.1, 0.2], values=[0, 1])
    with pytest.raises(ValueError, match="increasing"):
        StepBonus(ColourStatisticReward(), thresholds=[0.2, 0.1], values=[0, 1, 2])


def test_step_bonus_reuses_the_wrapped_scores(models, images):
    clip = build("clip_open_clip", models)
    bonus = StepBonus(clip, thresholds=[0.0], values=[-1.0, 1.0])
    calls = []
    scorer = clip.scorer
    original = scorer.image_features

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    scorer.image_features = counting
    completions = list(images[:4])
    raw = clip(prompts=CAPTIONS[:4], completions=completions)
    steps = bonus(prompts=CAPTIONS[:4], completions=completions)
    assert steps == [1.0 if s >= 0 else -1.0 for s in raw] and len(calls) == 1
    bonus(prompts=CAPTIONS[:4], completions=list(completions))  # a new batch is scored again
    assert len(calls) == 2
    assert bonus(prompts=list(reversed(CAPTIONS[:4])), completions=completions) != [None] * 4 and len(calls) == 3


def test_reward_mix_from_yaml_sums_like_trl(images, tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text(
        "mix:\n"
        "  saturation: 2.0\n"
        "  saturation_step: {reward: saturation, step_bonus: {thresholds: [0.3], values: [0.0, 1.0]}}\n"
        "  jpeg_compressibility: 0.1\n"
        "rewards:\n"
        "  jpeg_compressibility: {quality: 80}\n"
    )
    mix = RewardMix.from_config(str(path))
    assert [t.name for t in mix.terms] == ["saturation", "saturation_step", "jpeg_compressibility"]
    assert mix.reward_weights == [2.0, 1.0, 0.1]
    assert mix.reward_funcs[0] is mix.reward_funcs[1].reward and mix.reward_funcs[2].quality == 80
    logged = {}
    total = mix(prompts=None, completions=images[:3], log_metric=lambda k, v: logged.__setitem__(k, v))
    sat = ColourStatisticReward()(prompts=None, completions=images[:3])
    jpeg = JpegCompressibilityReward(quality=80)(prompts=None, completions=images[:3])
    expected = [2 * s + (1.0 if s >= 0.3 else 0.0) + 0.1 * j for s, j in zip(sat, jpeg)]
    np.testing.assert_allclose(total, expected)
    assert {"image_reward/saturation/mean", "image_reward/reward_mix/mean"} <= set(logged)

    class Partial:
        __name__ = "partial"

        def __call__(self, prompts=None, completions=None, **kwargs):
            return [None, 1.0, None]

    summed = RewardMix({"partial": 1.0}, rewards={"partial": Partial()})(prompts=None, completions=images[:3])
    assert summed == [None, 1.0, None]

    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        RewardMix({"nope": 1.0})
    with pytest.raises(ValueError, match="unknown keys"):
        RewardMix({"saturation": {"wieght": 1.0}})
    with pytest.raises(ValueError, match="`mix` key"):
        RewardMix.from_config({"terms": {}})


def test_ar_grpo_mixes(models, images):
    class FakeJudge:
        async def generate(self, messages):
            return '{"score": 4}' if "0 and 5" in messages[0]["content"][0]["text"] else '{"score": 1}'

    rewards = {
        "clip_score": {"model": models["open_clip"]},
        "hps_v2": {"checkpoint": models["hps_checkpoint"], "model_name": models["hps_config"], "repo_id": None},
        "maniqa": {"checkpoint": models["maniqa"], "repo_id": None, "config": tiny_maniqa_config()},
        "vlm_realism": {"backend": FakeJudge()},
    }
    for task, columns in (("c2i", {"class_label": [1, 2]}), ("t2i", {"caption": CAPTIONS[:2]})):
        mix = RewardMix.ar_grpo(task, rewards=rewards, common={"device": "cpu"})
        assert [t.name for t in mix.terms] == [
            "clip_score", "clip_score_step", "hps_v2", "hps_v2_step", "maniqa", "vlm_realism"
        ]  # fmt: skip
        assert mix.reward_weights == [5.0, 1.0, 5.0, 1.0, 2.0, 1.0]
        total = mix(prompts=["p", "p"], completions=images[:2], **columns)
        parts = [term.reward(prompts=["p", "p"], completions=images[:2], **columns) for term in mix.terms[:5]]
        vlm = [0.25 * 4 + 0.25 + 0.25] * 2
        expected = [sum(w * p[i] for w, p in zip(mix.reward_weights, parts)) + vlm[i] for i in range(2)]
        np.testing.assert_allclose(total, expected, rtol=1e-6)
    with pytest.raises(KeyError, match="class_label"):  # c2i reads the class labels
        RewardMix.ar_grpo("c2i", rewards=rewards, common={"device": "cpu"})(
            prompts=["p"], completions=images[:1], caption=["x"]
        )
