"""
Image rewards for GRPO on image generators (AR-GRPO and beyond): callables with TRL's reward signature that score
the decoded images passed as `completions` against the prompt, caption or class of each row.

- Semantic fidelity and human preference: [`make_clip_score_reward`] (`clip_score`), [`make_hps_v2_reward`]
  (`hps_v2`), [`make_pick_score_reward`] (`pick_score`).
- Aesthetics and quality: [`make_laion_aesthetic_reward`] (`laion_aesthetic`), [`make_maniqa_reward`] (`maniqa`).
- Realism: [`VLMRealismReward`] / [`make_vlm_realism_reward`], a VLM judge (OpenAI-compatible endpoint or
  in-process transformers model).
- Weight-free: [`JpegCompressibilityReward`] (`jpeg_compressibility`, `jpeg_incompressibility`),
  [`ColourStatisticReward`] (`saturation_reward`, `colourfulness_reward`).
- Composition: [`StepBonus`] (AR-GRPO's quantised bonus) and [`RewardMix`] (AR-GRPO's mixes by configuration).

Model-backed rewards load lazily (first call), once per process, on the process's device, and never pickle their
weights. The module-level instances (`clip_score`, `hps_v2`, ...) load the reference checkpoints from the Hub.
"""

from dataclasses import dataclass, field

from .. import pixel as _pixel
from ._base import ImageReward, TextSource, clear_scorer_cache, imagenet_class_names, to_uint8_image, to_uint8_images
from ._loading import ModelImageReward
from .clip import (
    AestheticMLP,
    AestheticScorer,
    ClipBackbone,
    ClipScorer,
    OpenClipBackbone,
    TransformersClipBackbone,
    clip_score,
    hps_v2,
    laion_aesthetic,
    load_open_clip,
    load_transformers_clip,
    make_clip_score_reward,
    make_hps_v2_reward,
    make_laion_aesthetic_reward,
    make_pick_score_reward,
    pick_score,
)
from .maniqa import MANIQA, ManiqaConfig, ManiqaScorer, crop_boxes, make_maniqa_reward, maniqa
from .mix import (
    AR_GRPO_C2I_MIX,
    AR_GRPO_STEP_THRESHOLDS,
    AR_GRPO_STEP_VALUES,
    AR_GRPO_T2I_MIX,
    RECIPE_MIXES,
    MixTerm,
    RewardMix,
    StepBonus,
    recipe_reward_funcs,
    step_bonus,
)
from .preprocess import ImagePreprocess
from .vlm import REALISM_QUESTIONS, RealismQuestion, VLMRealismReward, make_vlm_realism_reward, parse_score
from .weight_free import (
    ColourStatisticReward,
    JpegCompressibilityReward,
    colourfulness,
    colourfulness_reward,
    jpeg_compressibility,
    jpeg_incompressibility,
    saturation,
    saturation_reward,
)

vlm_realism = make_vlm_realism_reward()


# The reward names the AR-GRPO recipes take in `--reward_funcs`: the weight-free pixel statistics work offline, the
# learned scorers load their weights when first called.
AR_GRPO_REWARD_FUNCS = {
    "brightness": _pixel.brightness_reward,
    "colorfulness": _pixel.colorfulness_reward,
    "jpeg_compressibility": _pixel.jpeg_compressibility_reward,
    "jpeg_incompressibility": _pixel.jpeg_incompressibility_reward,
    "clip_score": clip_score,
    "hps_v2": hps_v2,
    "maniqa": maniqa,
}


@dataclass
class ImageRewardArguments:
    """The reward arguments of the image recipes, resolved by [`recipe_reward_funcs`]."""

    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": f"Reward functions, weighted by `reward_weights`. Available: {sorted(AR_GRPO_REWARD_FUNCS)}. "
            "Defaults to jpeg_incompressibility when `reward_mix` is unset."
        },
    )
    reward_mix: str | None = field(
        default=None,
        metadata={
            "help": "A reward mix instead of `reward_funcs`: 'ar_grpo_c2i' / 'ar_grpo_t2i' (AR-GRPO's: CLIP x5 and "
            "HPSv2.1 x5, each with its step bonus, MANIQA x2, VLM realism x1) or a RewardMix YAML file."
        },
    )


__all__ = [
    "AR_GRPO_REWARD_FUNCS",
    "ImageRewardArguments",
    "RECIPE_MIXES",
    "recipe_reward_funcs",
    "AR_GRPO_C2I_MIX",
    "AR_GRPO_STEP_THRESHOLDS",
    "AR_GRPO_STEP_VALUES",
    "AR_GRPO_T2I_MIX",
    "MANIQA",
    "REALISM_QUESTIONS",
    "AestheticMLP",
    "AestheticScorer",
    "ClipBackbone",
    "ClipScorer",
    "ColourStatisticReward",
    "ImagePreprocess",
    "ImageReward",
    "JpegCompressibilityReward",
    "ManiqaConfig",
    "ManiqaScorer",
    "MixTerm",
    "ModelImageReward",
    "OpenClipBackbone",
    "RealismQuestion",
    "RewardMix",
    "StepBonus",
    "TextSource",
    "TransformersClipBackbone",
    "VLMRealismReward",
    "clear_scorer_cache",
    "clip_score",
    "colourfulness",
    "colourfulness_reward",
    "crop_boxes",
    "hps_v2",
    "imagenet_class_names",
    "jpeg_compressibility",
    "jpeg_incompressibility",
    "laion_aesthetic",
    "load_open_clip",
    "load_transformers_clip",
    "make_clip_score_reward",
    "make_hps_v2_reward",
    "make_laion_aesthetic_reward",
    "make_maniqa_reward",
    "make_pick_score_reward",
    "make_vlm_realism_reward",
    "maniqa",
    "parse_score",
    "pick_score",
    "saturation",
    "saturation_reward",
    "step_bonus",
    "to_uint8_image",
    "to_uint8_images",
    "vlm_realism",
]
