"""Model judges: a robust async client for OpenAI-compatible endpoints and helpers to prompt and parse judges."""

from .openai_compat import (
    JUDGE_ERROR_KINDS,
    JudgeError,
    OpenAICompatibleClient,
    coerce_number,
    decode_data_url,
    image_content,
    image_to_data_url,
    iter_json_values,
    parse_json_object,
    strip_reasoning,
)

__all__ = [
    "JUDGE_ERROR_KINDS",
    "JudgeError",
    "OpenAICompatibleClient",
    "coerce_number",
    "decode_data_url",
    "image_content",
    "image_to_data_url",
    "iter_json_values",
    "parse_json_object",
    "strip_reasoning",
]
