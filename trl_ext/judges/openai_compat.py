"""
Async client for OpenAI-compatible chat-completions endpoints (vLLM, SGLang, TGI, OpenAI, ...), and the helpers model
judges need around it: images as data URLs and robust JSON extraction from free-form model output.

Example:

```python
>>> from trl_ext.judges.openai_compat import OpenAICompatibleClient, image_content, parse_json_object
>>> client = OpenAICompatibleClient("http://localhost:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct")
>>> png_bytes = open("screenshot.png", "rb").read()  # doctest: +SKIP
>>> messages = [{"role": "user", "content": [{"type": "text", "text": "Rate it."}, image_content(png_bytes)]}]  # doctest: +SKIP
>>> parse_json_object(client.chat_sync(messages, temperature=0.0))  # needs the endpoint  # doctest: +SKIP
{'score': 7}
```
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import json
import logging
import math
import os
import random
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

logger = logging.getLogger(__name__)

# Failure kinds of [`JudgeError`]. Judges count failures under these names (they become metric suffixes): keep them
# stable.
TIMEOUT = "timeout"  # a request or the whole call ran out of time
CONNECT = "connect"  # the server could not be reached or dropped the connection
RATE_LIMIT = "rate_limit"  # 429 until the retries ran out
SERVER = "server"  # 5xx until the retries ran out
AUTH = "auth"  # 401 / 403
HTTP = "http"  # any other 4xx (wrong model name, bad request, context too long, ...)
RESPONSE = "response"  # 200 but no usable text (not JSON, no choices, empty content)
PARSE = "parse"  # the model's text is not the JSON the caller asked for
BACKEND = "backend"  # an in-process model failed
JUDGE_ERROR_KINDS = (TIMEOUT, CONNECT, RATE_LIMIT, SERVER, AUTH, HTTP, RESPONSE, PARSE, BACKEND)

# Statuses worth retrying (the same set as the official OpenAI SDK): request timeout, conflict, rate limit and
# server errors.
_RETRY_STATUSES = frozenset({408, 409, 429})
_MAX_ERROR_CHARS = 500


class JudgeError(RuntimeError):
    """
    A model judge could not produce an answer. Callers count these per `kind` and exclude the sample (reward `None`)
    rather than scoring it zero.

    Args:
        kind (`str`):
            One of [`JUDGE_ERROR_KINDS`]: `"timeout"`, `"connect"`, `"rate_limit"`, `"server"`, `"auth"`, `"http"`,
            `"response"`, `"parse"` or `"backend"`.
        message (`str`):
            Human-readable description, with a hint at the fix where there is one.
        status (`int`, *optional*):
            HTTP status of the last response, if any.
    """

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.status = status


class _Retryable(Exception):
    """One failed attempt that may succeed if repeated."""

    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


def _chat_completions_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("`base_url` must be a non-empty string such as 'http://localhost:8000/v1'.")
    base_url = base_url.strip()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"`base_url` must be an http(s) URL such as 'http://localhost:8000/v1', got {base_url!r}.")
    if parts.query or parts.fragment:
        raise ValueError(f"`base_url` must not carry a query string or fragment, got {base_url!r}.")
    path = parts.path.rstrip("/")
    # Accept the three spellings users paste: the server root (vLLM/SGLang serve under /v1), the OpenAI SDK's
    # base_url (ends with /v1 or a provider prefix) and the full endpoint.
    if not path:
        path = "/v1/chat/completions"
    elif not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            date = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if date is None:
            return None
        seconds = date.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error_text(response: httpx.Response) -> str:
    # OpenAI-style servers answer {"error": {"message": ...}}, TGI {"error": "..."}, FastAPI {"detail": ...}.
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        text = None
        if isinstance(body, dict):
            error = body.get("error", body.get("detail", body.get("message")))
            if isinstance(error, dict):
                error = error.get("message", error)
            if error is not None:
                text = error if isinstance(error, str) else json.dumps(error)
        if text is None:
            text = json.dumps(body)
    text = " ".join(text.split())
    return text[:_MAX_ERROR_CHARS] + ("..." if len(text) > _MAX_ERROR_CHARS else "")


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        return "".join(texts)
    return None


class OpenAICompatibleClient:
    """
    Minimal async client for `POST {base_url}/chat/completions` of any OpenAI-compatible server (vLLM, SGLang, TGI,
    OpenAI, OpenRouter, ...), built for reward functions that fire hundreds of judge calls per training step.

    - Retries connection errors, timeouts, 408/409/429 and 5xx with exponential backoff and jitter, honouring the
      server's `Retry-After`; other 4xx fail at once with a [`JudgeError`] that says what to fix.
    - At most `max_concurrency` requests in flight per event loop; each attempt has its own `timeout` and the whole
      call (attempts and waits, once a concurrency slot is held) a `deadline`.
    - Usable from any event loop over its life (TRL runs async rewards on its own loop; [`chat_sync`] uses a fresh
      loop per call): the `httpx.AsyncClient` and the semaphore are created lazily for each running loop.

    It implements the judge backend protocol (`async generate(messages) -> str`) used by
    [`~trl_ext.web.vlm_judge.VLMPageJudge`] and [`~trl_ext.web.vlm_judge.VLMInteractionJudge`].

    Args:
        base_url (`str`):
            Server URL: its root (`"http://localhost:8000"`, then `/v1/chat/completions` is used), an OpenAI-SDK
            style base URL (`"https://api.openai.com/v1"`, then `/chat/completions` is appended) or the full
            endpoint URL.
        model (`str`):
            Model name as the server knows it (`--served-model-name` for vLLM).
        api_key (`str`, *optional*):
            Bearer token. When `None`, read from the environment variable `api_key_env`; with no key at all, no
            `Authorization` header is sent (local servers).
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`):
            Environment variable holding the key. `None` disables the lookup.
        timeout (`float`, *optional*, defaults to `60.0`):
            Seconds allowed for one HTTP attempt (connection, upload and the whole answer).
        max_retries (`int`, *optional*, defaults to `3`):
            Retries after the first attempt for retryable failures.
        backoff (`float`, *optional*, defaults to `1.0`):
            Base delay in seconds; retry `n` waits `min(max_backoff, backoff * 2**n)` with jitter in its upper half.
        max_backoff (`float`, *optional*, defaults to `30.0`):
            Cap on the computed delay (a `Retry-After` from the server is honoured up to the deadline).
        max_concurrency (`int`, *optional*, defaults to `16`):
            Most requests in flight at once on one event loop (also the size of the connection pool).
        extra_body (`dict`, *optional*):
            Fields merged into every request body (`temperature`, `max_tokens`, `top_p`, vLLM's `top_k`,
            `response_format`, ...). Per-call `**params` of [`chat`] override them.
        deadline (`float`, *optional*):
            Seconds allowed for one [`chat`] call, retries and waits included, counted once a concurrency slot is
            held (time queued behind other calls does not count). Defaults to the longest the retries can take:
            `(max_retries + 1) * timeout + max_retries * max_backoff`.
        headers (`dict[str, str]`, *optional*):
            Extra HTTP headers (e.g. `{"api-key": ...}` for Azure, attribution headers for OpenRouter).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_concurrency: int = 16,
        extra_body: dict[str, Any] | None = None,
        deadline: float | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.url = _chat_completions_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise ValueError("`model` must be the non-empty model name the server serves (e.g. vLLM's --model).")
        for name, value in (("timeout", timeout), ("max_backoff", max_backoff)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"`{name}` must be a positive number of seconds, got {value!r}.")
        if not isinstance(backoff, (int, float)) or not math.isfinite(backoff) or backoff < 0:
            raise ValueError(f"`backoff` must be a non-negative number of seconds, got {backoff!r}.")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"`max_retries` must be an integer >= 0, got {max_retries!r}.")
        if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
            raise ValueError(f"`max_concurrency` must be an integer >= 1, got {max_concurrency!r}.")
        if extra_body is not None and not isinstance(extra_body, dict):
            raise ValueError(f"`extra_body` must be a dict of request fields, got {type(extra_body).__name__}.")
        for reserved in ("model", "messages", "stream"):
            if extra_body and reserved in extra_body:
                raise ValueError(f"`extra_body` must not set {reserved!r}: the client sets it.")
        if deadline is None:
            deadline = (max_retries + 1) * timeout + max_retries * max_backoff
        elif not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0:
            raise ValueError(f"`deadline` must be a positive number of seconds, got {deadline!r}.")
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None
        self.model = model.strip()
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self.deadline = float(deadline)
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._has_api_key = bool(api_key)
        self._rng = random.Random()
        # httpx.AsyncClient and asyncio.Semaphore are bound to the loop they were first used on.
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        #: Attempts, retries (per reason) and errors (per kind) since creation, for logging.
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.url!r}, model={self.model!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    def _resources(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            resources = self._per_loop.get(loop)
            if resources is None:
                # Connections of loops that ended (e.g. `asyncio.run` per call) can no longer be closed cleanly, and
                # their pools may keep the loop alive: drop them so they do not pile up.
                for dead in [other for other in self._per_loop if other.is_closed()]:
                    del self._per_loop[dead]
                client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                    ),
                    headers=self._headers,
                    # Judge endpoints are configured explicitly; proxies from the environment break local servers.
                    trust_env=False,
                )
                resources = (client, asyncio.Semaphore(self.max_concurrency))
                self._per_loop[loop] = resources
            return resources

    async def chat(self, messages: list[dict[str, Any]], **params: Any) -> str:
        """
        Send one chat-completions request and return the text of the first choice.

        Args:
            messages (`list[dict]`):
                OpenAI-format messages; content may be a string or a list of parts (`{"type": "text", ...}`,
                `{"type": "image_url", ...}`, see [`image_content`]).
            **params:
                Request fields for this call (`temperature`, `max_tokens`, ...), over `extra_body`.

        Returns:
            `str`: The assistant message's content.

        Raises:
            [`JudgeError`]: When no answer could be obtained within the retries and the deadline.
        """
        if not isinstance(messages, list) or not messages:
            raise ValueError("`messages` must be a non-empty list of OpenAI-format message dicts.")
        body = {**self.extra_body, **params, "model": self.model, "messages": messages}
        body.pop("stream", None)
        payload = json.dumps(body).encode()
        client, semaphore = self._resources()
        async with semaphore:
            start = time.monotonic()
            try:
                return await asyncio.wait_for(self._with_retries(client, payload, start), self.deadline)
            except asyncio.TimeoutError:
                self.stats[f"errors/{TIMEOUT}"] += 1
                raise JudgeError(
                    TIMEOUT, f"no answer from {self.url} within the deadline of {self.deadline:g}s"
                ) from None
            except JudgeError as error:
                self.stats[f"errors/{error.kind}"] += 1
                raise

    async def generate(self, messages: list[dict[str, Any]]) -> str:
        """Judge backend protocol: [`chat`] with the client's default request fields."""
        return await self.chat(messages)

    def chat_sync(self, messages: list[dict[str, Any]], **params: Any) -> str:
        """Blocking [`chat`] for code without an event loop (runs a fresh loop and closes its connections)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("`chat_sync` cannot run inside an event loop: `await client.chat(...)` instead.")

        async def call() -> str:
            try:
                return await self.chat(messages, **params)
            finally:
                await self.aclose()

        return asyncio.run(call())

    async def aclose(self) -> None:
        """Close the connections opened on the running loop (those of other loops are dropped with their loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            resources = self._per_loop.pop(loop, None)
        if resources is not None:
            await resources[0].aclose()

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(self.max_backoff, self.backoff * 2**retry)
        return cap / 2 + self._rng.uniform(0, cap / 2)

    async def _with_retries(self, client: httpx.AsyncClient, payload: bytes, start: float) -> str:
        for attempt in range(self.max_retries + 1):
            remaining = self.deadline - (time.monotonic() - start)
            try:
                return await self._attempt(client, payload, max(1e-3, min(self.timeout, remaining)))
            except _Retryable as failure:
                last = failure
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, last.retry_after)
            if delay >= self.deadline - (time.monotonic() - start):
                raise JudgeError(
                    last.kind,
                    f"{last.message}; giving up: the next retry (in {delay:.1f}s) would pass the deadline of "
                    f"{self.deadline:g}s",
                    last.status,
                )
            self.stats["retries"] += 1
            self.stats[f"retries/{last.kind}"] += 1
            logger.debug("Retrying %s in %.2fs after: %s", self.url, delay, last.message)
            await asyncio.sleep(delay)
        raise JudgeError(last.kind, f"{last.message} (gave up after {self.max_retries + 1} attempts)", last.status)

    async def _attempt(self, client: httpx.AsyncClient, payload: bytes, timeout: float) -> str:
        self.stats["requests"] += 1
        try:
            # httpx's timeouts bound each phase separately; the outer wait bounds the whole attempt, so a server
            # trickling bytes cannot hold it forever.
            response = await asyncio.wait_for(
                client.post(self.url, content=payload, timeout=httpx.Timeout(timeout)), timeout
            )
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retryable(TIMEOUT, f"request to {self.url} timed out after {timeout:.3g}s") from None
        except httpx.TransportError as error:
            raise _Retryable(CONNECT, f"cannot reach {self.url}: {type(error).__name__}: {error}") from None
        except httpx.RequestError as error:  # e.g. an undecodable body: repeating the request will not help
            raise JudgeError(RESPONSE, f"bad response from {self.url}: {type(error).__name__}: {error}") from None
        status = response.status_code
        if status >= 400:
            text = _error_text(response)
            if status in _RETRY_STATUSES or status >= 500:
                kind = RATE_LIMIT if status == 429 else TIMEOUT if status == 408 else SERVER if status >= 500 else HTTP
                raise _Retryable(
                    kind,
                    f"HTTP {status} from {self.url}: {text}",
                    status,
                    _parse_retry_after(response.headers.get("retry-after")),
                )
            if status in (401, 403):
                if self._has_api_key:
                    hint = "the API key was rejected: check `api_key=`"
                    hint += f" or ${self.api_key_env}" if self.api_key_env else ""
                else:
                    hint = "no API key was sent: pass `api_key=`"
                    hint += f" or set ${self.api_key_env}" if self.api_key_env else ""
                raise JudgeError(AUTH, f"HTTP {status} from {self.url} ({hint}): {text}", status)
            hint = ""
            if status == 404:
                hint = f" (check the model name {self.model!r} against the server's /v1/models, and the URL)"
            raise JudgeError(HTTP, f"HTTP {status} from {self.url}{hint}: {text}", status)
        try:
            body = response.json()
            choice = body["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JudgeError(
                RESPONSE, f"{self.url} answered {status} without a chat completion: {response.text[:200]!r}", status
            ) from None
        text = _message_text(message.get("content") if isinstance(message, dict) else None)
        if not text:
            finish = choice.get("finish_reason") if isinstance(choice, dict) else None
            hint = " (raise `max_tokens`: reasoning models can spend it all thinking)" if finish == "length" else ""
            raise JudgeError(RESPONSE, f"empty answer from {self.url} (finish_reason={finish!r}){hint}", status)
        return text


# ----------------------------------------------------------------------------------------------------------------
# Images


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_to_data_url(image: Any) -> str:
    """
    Encode an image as a base64 data URL for the `image_url` content part.

    Args:
        image (`PIL.Image.Image`, `bytes` or `os.PathLike`):
            A PIL image (encoded as PNG) or the bytes / path of an encoded PNG, JPEG, GIF or WEBP file (sent as
            they are, with their own MIME type).

    Returns:
        `str`: `"data:image/png;base64,..."` (or the file's own type).
    """
    if isinstance(image, os.PathLike):
        with open(image, "rb") as file:
            image = file.read()
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        mime = _image_mime(data)
        if mime is None:
            raise ValueError(
                "Image bytes must be an encoded PNG, JPEG, GIF or WEBP file; decode raw pixels with PIL first."
            )
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover (Pillow ships with transformers' vision extras)
        raise ImportError("Encoding PIL images needs Pillow: `pip install pillow`.") from error
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "I;16"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image.save(buffer, format="PNG")
        return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
    raise TypeError(f"`image` must be a PIL image, encoded image bytes or a path, got {type(image).__name__}.")


def image_content(image: Any, detail: str | None = None) -> dict[str, Any]:
    """
    The standard OpenAI content part for an image: `{"type": "image_url", "image_url": {"url": <data URL>}}`.

    Args:
        image (`PIL.Image.Image`, `bytes` or `os.PathLike`):
            See [`image_to_data_url`]. A string is taken as a URL the server fetches itself.
        detail (`str`, *optional*):
            OpenAI's `"low"`, `"high"` or `"auto"`; left out of the request when `None`.
    """
    url = image if isinstance(image, str) else image_to_data_url(image)
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if detail is not None:
        if detail not in ("low", "high", "auto"):
            raise ValueError(f"`detail` must be 'low', 'high' or 'auto', got {detail!r}.")
        part["image_url"]["detail"] = detail
    return part


def decode_data_url(url: str) -> bytes:
    """Bytes of a base64 `data:` URL (the inverse of [`image_to_data_url`])."""
    header, comma, data = url.partition(",")
    if not header.startswith("data:") or not comma or not header.endswith(";base64"):
        raise ValueError("Expected a base64 data URL ('data:<mime>;base64,<data>').")
    return base64.b64decode(data, validate=True)


# ----------------------------------------------------------------------------------------------------------------
# JSON in model output

_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_END = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYTHON_LITERALS = {"True": "true", "False": "false", "None": "null"}
_LEADING_NUMBER = re.compile(r"^[\s\"'(\[]*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
# Judge answers are short and end with the answer: scan their tail, and give up on pathological bracket soup (each
# failed candidate costs a scan to the end of the text).
_MAX_SCAN_CHARS = 32_000
_MAX_FAILED_CANDIDATES = 64
_MAX_TRUNCATION_TRIES = 8


def strip_reasoning(text: str) -> str:
    """Drop `<think>...</think>` blocks (and everything before a dangling `</think>`, whose opening tag the chat
    template already emitted)."""
    text = _THINK_BLOCK.sub(" ", text)
    ends = list(_THINK_END.finditer(text))
    if ends:
        text = text[ends[-1].end() :]
    return text


def _span_end(text: str, start: int) -> int | None:
    """Index after the bracket closing the one at `start`, skipping brackets inside quoted strings."""
    stack = []
    quote = None
    i = start
    n = len(text)
    while i < n:
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
            if not stack:
                return i + 1
        i += 1
    return None


def _repair(candidate: str) -> str:
    """Rewrite near-JSON (single quotes, trailing commas, Python literals, bare keys, comments) as JSON."""
    out: list[str] = []
    i = 0
    n = len(candidate)
    while i < n:
        char = candidate[i]
        if char in "\"'":
            quote = char
            i += 1
            chars = []
            while i < n and candidate[i] != quote:
                if candidate[i] == "\\" and i + 1 < n:
                    escaped = candidate[i + 1]
                    # \' is not a JSON escape; a bare " inside a single-quoted string must become \".
                    chars.append("'" if escaped == "'" else "\\" + escaped)
                    i += 2
                    continue
                chars.append('\\"' if candidate[i] == '"' else candidate[i])
                i += 1
            i += 1
            out.append('"' + "".join(chars) + '"')
        elif candidate.startswith("//", i):
            newline = candidate.find("\n", i)
            i = n if newline == -1 else newline
        elif candidate.startswith("/*", i):
            close = candidate.find("*/", i + 2)
            i = n if close == -1 else close + 2
        elif char in "}]":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
            out.append(char)
            i += 1
        elif (match := _IDENTIFIER.match(candidate, i)) is not None:
            word = match.group(0)
            i = match.end()
            rest = candidate[i:].lstrip()
            if rest.startswith(":"):  # bare object key
                out.append(f'"{word}"')
            else:
                out.append(_PYTHON_LITERALS.get(word, word))
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _loads(candidate: str) -> Any:
    for attempt in (candidate, None):
        try:
            return json.loads(attempt if attempt is not None else _repair(candidate), strict=False)
        except (ValueError, RecursionError):
            continue
    raise ValueError("not JSON")


def _close_truncated(text: str, start: int) -> str | None:
    """Close the strings and brackets left open by an answer cut off mid-object (e.g. by `max_tokens`)."""
    stack = []
    quote = None
    i = start
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack or stack.pop() != char:
                return None
        i += 1
    if not stack:
        return None
    tail = text[start:].rstrip()
    if quote is not None:
        tail += quote
    elif tail.endswith(":"):
        tail += "null"
    return tail + "".join(reversed(stack))


def _bracket_tree(text: str) -> list[tuple[int, int, list]]:
    """
    Matched bracket pairs of the text as a forest of `(start, end, children)`, in one pass. Quotes open strings only
    inside brackets (and single quotes only where a JSON value or key can start), so apostrophes and stray quotes in
    the prose around the JSON do not derail the scan; a closing bracket that matches nothing resets the scan.
    """
    roots: list[tuple[int, int, list]] = []
    open_nodes: list[tuple[int, str, list]] = []  # (start, expected closer, children)
    quote = None
    previous = ""
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
                previous = char
            i += 1
            continue
        if open_nodes and (char == '"' or (char == "'" and previous in "{[,:")):
            quote = char
        elif char in "{[":
            open_nodes.append((i, "}" if char == "{" else "]", []))
        elif char in "}]":
            if open_nodes and open_nodes[-1][1] == char:
                start, _, children = open_nodes.pop()
                node = (start, i + 1, children)
                (open_nodes[-1][2] if open_nodes else roots).append(node)
            else:
                # Unclosed openers before a mismatch were prose; their matched children are kept.
                for _, _, children in open_nodes:
                    roots.extend(children)
                open_nodes.clear()
        if not char.isspace():
            previous = char
        i += 1
    for _, _, children in open_nodes:
        roots.extend(children)
    roots.sort(key=lambda node: node[0])
    return roots


def _values_in_tree(text: str, roots: list[tuple[int, int, list]]) -> Iterator[Any]:
    """Outermost parsable spans of the forest, left to right (a span that fails is replaced by its children)."""
    pending = list(reversed(roots))
    # Disjoint spans cost at most the text's length in all; descending into failed spans is what can cost quadratic
    # time (deep bracket soup), so the characters re-parsed that way are bounded.
    budget = 2 * len(text) + 4096
    while pending:
        start, end, children = pending.pop()
        try:
            value = _loads(text[start:end])
        except ValueError:
            children_chars = sum(child_end - child_start for child_start, child_end, _ in children)
            if children_chars <= budget:
                budget -= children_chars
                pending.extend(reversed(children))
        else:
            yield value


def _values_by_rescanning(text: str) -> Iterator[Any]:
    """Slow fallback: try every opening bracket, each with its own string-aware scan (bounded effort)."""
    i = 0
    failures = 0
    while i < len(text) and failures < _MAX_FAILED_CANDIDATES:
        if text[i] not in "{[":
            i += 1
            continue
        end = _span_end(text, i)
        if end is not None:
            try:
                value = _loads(text[i:end])
            except ValueError:
                pass
            else:
                yield value
                i = end
                continue
        failures += 1
        i += 1


def iter_json_values(text: str) -> Iterator[Any]:
    """
    Yield every top-level JSON object or array found in free-form model output, in order, after dropping reasoning
    blocks. Fenced blocks, prose around the values, trailing commas, single quotes, Python literals
    (`True`/`None`), bare keys and comments are tolerated. An object cut off at the end of the text (the answer ran
    out of tokens) is closed and yielded, only when no complete value was found.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a string, got {type(text).__name__}.")
    text = strip_reasoning(text)[-_MAX_SCAN_CHARS:]
    found = False
    for value in _values_in_tree(text, _bracket_tree(text)):
        found = True
        yield value
    if found:
        return
    # The one-pass scan can be misled (e.g. an unbalanced quote inside bracketed prose): rescan the slow way.
    for value in _values_by_rescanning(text):
        found = True
        yield value
    if found:
        return
    # An answer cut off mid-object (e.g. by `max_tokens`): close it from its first brace that leaves a valid object.
    first_open = text.find("{")
    for _ in range(_MAX_TRUNCATION_TRIES):
        if first_open == -1:
            return
        closed = _close_truncated(text, first_open)
        if closed is not None:
            try:
                value = _loads(closed)
            except ValueError:
                pass
            else:
                yield value
                return
        first_open = text.find("{", first_open + 1)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """
    Extract the JSON object a model was asked to answer with.

    Robust to ```` ```json ```` fences, prose before and after, `<think>...</think>` blocks, trailing commas,
    single-quoted strings, Python literals, bare keys, comments and an object truncated at the end of the output.
    When several objects are present, the last complete one wins (models often restate an example first). Values
    are returned as written: use [`coerce_number`] for numbers given as strings (`"35"`, `"35/40"`).

    Args:
        text (`str`):
            The model's answer.

    Returns:
        `dict` or `None` when no object could be read.
    """
    objects = [value for value in iter_json_values(text) if isinstance(value, dict)]
    return objects[-1] if objects else None


def coerce_number(value: Any) -> float | None:
    """
    A finite number from a JSON value: numbers as they are, booleans refused, strings by their leading number
    (`"35"`, `"35/40"`, `"7.5 points"`, `"[3]"`). `None` when there is none.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        if match is None:
            return None
        number = float(match.group(1))
    else:
        return None
    return number if math.isfinite(number) else None
