"""
AR-GRPO's realism reward: a vision-language judge asked three questions about each image (a 0-5 quality rubric
against the prompt, "is it AI-generated?", "does it have strange features?"), through an OpenAI-compatible endpoint
(e.g. a local vLLM server) or a transformers VLM run in this process.

Judge failures (server down, timeouts, 5xx after retries, unreadable or out-of-range answers) never become scores:
the image's reward is `None` (TRL excludes it), the failure is counted per kind in `reward.counters` and logged as
`image_reward/<name>/failures/<kind>`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._base import DEFAULT_TEMPLATE, ImageReward, TextSource, as_image_list, log_mean, to_pil, to_uint8_image

logger = logging.getLogger(__name__)

DEFAULT_VLM = "Qwen/Qwen2.5-VL-3B-Instruct"
_LOG_FIRST = 3
_LOG_EVERY = 100


@dataclass(frozen=True)
class RealismQuestion:
    """
    One question put to the judge.

    Args:
        prompt (`str`):
            The question; `{text}` is replaced by the image's prompt (caption or "a photo of {class}").
        max_score (`float`):
            Top of the answer's scale; answers outside `[0, max_score]` count as parse failures.
    """

    prompt: str
    max_score: float


# AR-GRPO's rubric (reward_utils/qwen_vl_reward.py), with its wording tidied; the scales and the JSON key are the
# reference's.
QUALITY = RealismQuestion(
    prompt=(
        'You are given the text prompt used to generate an image: "{text}"\n'
        "Below is the generated image.\n"
        "1. Describe the image thoroughly (objects, colors, layout, etc.); do not let the prompt influence the "
        "description.\n"
        "2. Score the generation quality on these aspects:\n"
        "- Does the object in the image belong to the category the prompt asks for? (0-1 score)\n"
        "- Is the image complete, without missing parts? (0-1 score)\n"
        "- Does the content look real and reasonable? (0-1 score)\n"
        "- Is the image clear, bright and of high quality? (0-1 score)\n"
        "- Is the image free of noise, defects and artifacts? (0-1 score)\n"
        'Answer in JSON with three keys: "description", "score" and "explanation". "score" is the total '
        'score, a number between 0 and 5 (fractions allowed); "explanation" explains how you scored. Example:\n'
        "```json\n"
        '{{"description": "A brown dog with one eye and two ears; its tongue sticks out.", "score": 3.5, '
        '"explanation": "It matches \'a photo of a dog\' (1). The image is complete (1). The dog looks unreal: it '
        "has one eye, in the wrong place (0). The face is sharp but the body and background are blurred (0.5). "
        'There is no noise or artifact (1). Total: 1+1+0+0.5+1=3.5."}}\n'
        "```"
    ),
    max_score=5.0,
)
AI_GENERATED = RealismQuestion(
    prompt=(
        "Inspect the image carefully and score it on this question:\n"
        "- Is the image AI-generated? If yes, give 0, otherwise give 1.\n"
        "Answer in JSON like this:\n"
        '```json\n{{"score": 0}}\n```'
    ),
    max_score=1.0,
)
STRANGE_FEATURES = RealismQuestion(
    prompt=(
        "Inspect the image carefully and score it on this question:\n"
        "- Does the image have any strange feature? If yes, give 0, otherwise give 1.\n"
        "Answer in JSON like this:\n"
        '```json\n{{"score": 0}}\n```'
    ),
    max_score=1.0,
)
REALISM_QUESTIONS = {"quality": QUALITY, "ai_generated": AI_GENERATED, "strange_features": STRANGE_FEATURES}
# AR-GRPO divides each answer by 4 and sums the three rewards.
AR_GRPO_REALISM_WEIGHTS = {"quality": 0.25, "ai_generated": 0.25, "strange_features": 0.25}

_SCORE_IN_PROSE = re.compile(r"[\"']?score[\"']?\s*[:=]\s*[\"']?([+-]?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(answer: str, max_score: float) -> float | None:
    """
    The score in a judge's answer: the `"score"` entry (any key case) of the last JSON object in it (fences,
    reasoning blocks, trailing commas, single quotes and truncation tolerated), else a `score: <number>` in the
    prose. `None` when there is none or it lies outside `[0, max_score]`.
    """
    from ...judges.openai_compat import coerce_number, parse_json_object

    value = None
    data = parse_json_object(answer)
    if data is not None:
        for key, item in data.items():
            if isinstance(key, str) and key.strip().lower() == "score":
                value = coerce_number(item)
                break
    if value is None:
        matches = _SCORE_IN_PROSE.findall(answer)
        value = float(matches[-1]) if matches else None
    if value is None or not math.isfinite(value) or not 0.0 <= value <= max_score:
        return None
    return value


class VLMRealismReward(ImageReward):
    """
    AR-GRPO's realism reward: `sum(weights[q] * answer[q])` over the questions put to a VLM judge about each image,
    computed concurrently for all images and questions. An `async` reward: TRL runs it concurrently with the other
    async rewards (its judge calls dominate the step time otherwise).

    Per-question means are logged as `image_reward/<name>/<question>/mean`; failures (see the module docstring)
    make the image's reward `None`.

    Args:
        backend (*optional*):
            Anything with `async generate(messages) -> str` taking OpenAI-format messages, e.g. an
            [`~trl_ext.judges.openai_compat.OpenAICompatibleClient`] or a
            [`~trl_ext.web.vlm_judge.TransformersVLMBackend`]. Built lazily from the other arguments when `None`.
        base_url (`str`, *optional*):
            OpenAI-compatible server (e.g. `"http://localhost:8000/v1"` for `vllm serve`). Without it (and without
            `backend`), `model` is loaded in this process with transformers.
        model (`str`, *optional*, defaults to `"Qwen/Qwen2.5-VL-3B-Instruct"`):
            Served model name, or Hub id / folder of the in-process model.
        client_kwargs (`dict`, *optional*):
            Arguments of `OpenAICompatibleClient` (`api_key`, `timeout`, `max_retries`, `backoff`,
            `max_concurrency`, `deadline`, ...) or of `TransformersVLMBackend` (`max_batch_size`, `model_kwargs`,
            `device`, ...).
        max_tokens (`int`, *optional*, defaults to `512`):
            Most tokens per answer (the quality question asks for a description first).
        temperature (`float`, *optional*, defaults to `0.0`):
            Sampling temperature (greedy by default for reproducible rewards; AR-GRPO sampled at 0.6).
        questions (`Mapping[str, float]`, *optional*):
            Question name -> weight, names from `REALISM_QUESTIONS` (`"quality"`, `"ai_generated"`,
            `"strange_features"`) or keys of `custom_questions`. Defaults to AR-GRPO's 1/4 each.
        custom_questions (`Mapping[str, RealismQuestion]`, *optional*):
            Extra or replacement questions.
        image_format (`str`, *optional*, defaults to `"jpeg"`):
            How images are sent: `"jpeg"` (AR-GRPO's, PIL's default quality 75) or `"png"` (lossless, larger).
        text_column, class_column, template, class_names:
            Where the prompt of the quality question comes from, see [`TextSource`].
        value_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
            Range of float image tensors.
        name (`str`, *optional*, defaults to `"vlm_realism"`):
            Reward name.
    """

    def __init__(
        self,
        backend: Any = None,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_VLM,
        client_kwargs: Mapping[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        questions: Mapping[str, float] | None = None,
        custom_questions: Mapping[str, RealismQuestion] | None = None,
        image_format: str = "jpeg",
        text_column: str | None = None,
        class_column: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        class_names: Sequence[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        name: str = "vlm_realism",
    ):
        super().__init__(name, value_range)
        if backend is not None and base_url is not None:
            raise ValueError("Pass either `backend` or `base_url`, not both.")
        if backend is not None and not callable(getattr(backend, "generate", None)):
            raise TypeError("`backend` must have `async generate(messages) -> str` (e.g. an OpenAICompatibleClient).")
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"`image_format` must be 'jpeg' or 'png', got {image_format!r}.")
        self.questions_by_name = {**REALISM_QUESTIONS, **(custom_questions or {})}
        weights = dict(AR_GRPO_REALISM_WEIGHTS if questions is None else questions)
        unknown = sorted(set(weights) - set(self.questions_by_name))
        if unknown or not weights:
            raise ValueError(
                f"Unknown realism questions {unknown} (known: {sorted(self.questions_by_name)}); add them through "
                "`custom_questions`."
                if unknown
                else "`questions` must name at least one question."
            )
        self.weights = {key: float(value) for key, value in weights.items()}
        self.text_source = TextSource(text_column, class_column, template, class_names)
        self.uses_text = "quality" in self.weights or any(
            "{text}" in self.questions_by_name[q].prompt for q in weights
        )
        self.base_url = base_url
        self.model = model
        self.client_kwargs = dict(client_kwargs or {})
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.image_format = image_format
        self._backend = backend
        self._owns_backend = backend is None
        self._backend_lock = threading.Lock()
        self.counters: Counter[str] = Counter()

    # ---------------------------------------------------------------------------------------------------------------
    # Backend

    @property
    def backend(self) -> Any:
        with self._backend_lock:
            if self._backend is None:
                self._backend = self._build_backend()
            return self._backend

    def _build_backend(self) -> Any:
        if self.base_url is not None:
            from ...judges.openai_compat import OpenAICompatibleClient

            kwargs = dict(self.client_kwargs)
            extra_body = {
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                **kwargs.pop("extra_body", {}),
            }
            return OpenAICompatibleClient(self.base_url, self.model, extra_body=extra_body, **kwargs)
        from ...web.vlm_judge import TransformersVLMBackend

        generation = {"temperature": self.temperature} if self.temperature > 0 else {}
        return TransformersVLMBackend(
            self.model,
            max_new_tokens=self.max_tokens,
            do_sample=self.temperature > 0,
            generation_kwargs=generation,
            **self.client_kwargs,
        )

    # ---------------------------------------------------------------------------------------------------------------
    # Scoring

    def _image_part(self, image: torch.Tensor) -> dict[str, Any]:
        from ...judges.openai_compat import image_content

        buffer = io.BytesIO()
        to_pil(image).save(buffer, format="JPEG" if self.image_format == "jpeg" else "PNG")
        return image_content(buffer.getvalue())

    def messages(self, question: str, image_part: dict[str, Any], text: str | None) -> list[dict[str, Any]]:
        """The chat messages asking `question` about one image (given as an `image_url` content part)."""
        prompt = self.questions_by_name[question].prompt.format(text=text or "")
        # Text first, then the image, as AR-GRPO sends them.
        return [{"role": "user", "content": [{"type": "text", "text": prompt}, image_part]}]

    def _count(self, kind: str, message: str) -> None:
        self.counters[kind] += 1
        count = self.counters[kind]
        if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
            logger.warning("%s: judge failure #%d of kind %r: %s", self.__name__, count, kind, message)

    async def _ask(
        self, question: str, image_part: dict[str, Any], text: str | None, failures: Counter
    ) -> float | None:
        from ...judges.openai_compat import PARSE, JudgeError

        try:
            answer = await self.backend.generate(self.messages(question, image_part, text))
        except JudgeError as error:
            failures[error.kind] += 1
            self._count(error.kind, error.message)
            return None
        score = parse_score(answer, self.questions_by_name[question].max_score)
        if score is None:
            failures[PARSE] += 1
            self._count(PARSE, f"no score in [0, {self.questions_by_name[question].max_score:g}] in {answer[:300]!r}")
        return score

    async def ascores(self, prompts=None, completions=None, **columns) -> tuple[list[float | None], dict]:
        """Scores of a batch, with the per-question answers and failure counts of the batch."""
        images = [
            to_uint8_image(x, self.value_range, f"completions[{i}]") for i, x in enumerate(as_image_list(completions))
        ]
        texts = self.text_source.texts(prompts, columns, len(images)) if self.uses_text else [None] * len(images)
        parts = [self._image_part(image) for image in images]
        failures: Counter[str] = Counter()
        names = list(self.weights)
        answers = await asyncio.gather(
            *(self._ask(q, part, text, failures) for part, text in zip(parts, texts) for q in names)
        )
        per_image = [answers[i * len(names) : (i + 1) * len(names)] for i in range(len(images))]
        scores = [
            None if any(a is None for a in row) else sum(self.weights[q] * a for q, a in zip(names, row))
            for row in per_image
        ]
        by_question = {q: [row[j] for row in per_image] for j, q in enumerate(names)}
        if images and all(s is None for s in scores):
            logger.warning(
                "%s: the judge failed for every image of this batch (%s); their rewards are None (excluded), not 0.",
                self.__name__,
                dict(failures),
            )
        return scores, {"by_question": by_question, "failures": failures}

    async def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        scores, details = await self.ascores(prompts, completions, **kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            from ...judges.openai_compat import JUDGE_ERROR_KINDS

            for kind in JUDGE_ERROR_KINDS:
                log_metric(f"image_reward/{self.__name__}/failures/{kind}", float(details["failures"].get(kind, 0)))
            for question, values in details["by_question"].items():
                log_mean(kwargs, f"{self.__name__}/{question}", values)
        log_mean(kwargs, self.__name__, scores)
        return scores

    def scores(self, prompts=None, completions=None, **columns) -> list[float | None]:
        """Blocking version of the scoring (for code without an event loop)."""
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        if in_loop:
            raise RuntimeError(f"{self.__name__} is async: `await reward(...)` inside an event loop.")
        return asyncio.run(self.ascores(prompts, completions, **columns))[0]

    def close(self) -> None:
        """Stop an in-process backend's worker thread (clients need no closing: their connections die with them)."""
        backend = self._backend
        if backend is not None and callable(getattr(backend, "close", None)):
            backend.close()

    def __getstate__(self) -> dict[str, Any]:
        if not self._owns_backend:
            raise TypeError(
                f"{self.__name__} was given a backend object, which is not sent between processes: pass `base_url` "
                "(or `model`) instead, so that each process builds its own client."
            )
        state = super().__getstate__()
        state["_backend"] = None
        state["_backend_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._backend_lock = threading.Lock()


def make_vlm_realism_reward(base_url: str | None = None, model: str = DEFAULT_VLM, **kwargs) -> VLMRealismReward:
    """[`VLMRealismReward`] from an endpoint (`base_url`) or an in-process model; `kwargs` as the class takes."""
    return VLMRealismReward(base_url=base_url, model=model, **kwargs)


__all__ = [
    "AI_GENERATED",
    "AR_GRPO_REALISM_WEIGHTS",
    "QUALITY",
    "REALISM_QUESTIONS",
    "STRANGE_FEATURES",
    "RealismQuestion",
    "VLMRealismReward",
    "make_vlm_realism_reward",
    "parse_score",
]
