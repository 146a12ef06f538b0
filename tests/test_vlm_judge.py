"""
Vision-language judges and their OpenAI-compatible client, against a real HTTP server started by the tests (stdlib
`http.server` in a thread) and, for the in-process backend, a tiny random-weight Qwen2-VL saved to disk and loaded
back through `from_pretrained`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from trl_ext.judges.openai_compat import (
    JudgeError,
    OpenAICompatibleClient,
    _chat_completions_url,
    _parse_retry_after,
    coerce_number,
    decode_data_url,
    image_content,
    image_to_data_url,
    parse_json_object,
    strip_reasoning,
)
from trl_ext.web.types import Action, PageScore, RenderResult
from trl_ext.web.vlm_judge import (
    PAGE_SYSTEM_PROMPT,
    TransformersVLMBackend,
    VLMInteractionJudge,
    VLMPageJudge,
    describe_action,
    normalise_key,
)

MODEL = "judge-vl-7b"
GOOD = json.dumps({"rationale": "Clean hero, clear CTA.", "alignment": 33, "aesthetics": 24, "structure": 27})


# ----------------------------------------------------------------------------------------------------------------
# A scripted OpenAI-compatible server


class ScriptedServer:
    """`POST /v1/chat/completions` answering from a queue of scripted responses (the last one repeats)."""

    def __init__(self):
        self.responses: deque[dict] = deque()
        self.requests: list[dict] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                    )
                    spec = server.responses.popleft() if len(server.responses) > 1 else server.responses[0]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if spec.get("delay"):
                        server.stop.wait(spec["delay"])
                    status = spec.get("status", 200)
                    if "raw" in spec:
                        payload = spec["raw"].encode()
                    elif status == 200:
                        payload = json.dumps(
                            {
                                "id": "chatcmpl-1",
                                "object": "chat.completion",
                                "model": MODEL,
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": spec.get("content", GOOD)},
                                        "finish_reason": spec.get("finish_reason", "stop"),
                                    }
                                ],
                            }
                        ).encode()
                    else:
                        payload = json.dumps({"error": {"message": spec.get("error", f"error {status}")}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in spec.get("headers", {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, *specs: dict) -> None:
        self.responses.clear()
        self.responses.extend(specs)

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    server = ScriptedServer()
    server.script({"content": GOOD})
    yield server
    server.close()


def fast_client(url, **kwargs) -> OpenAICompatibleClient:
    defaults = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, "api_key_env": None}
    return OpenAICompatibleClient(url, MODEL, **{**defaults, **kwargs})


def png(width=64, height=48, color=(30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), color)
    image.putpixel((0, 0), (255, 0, 0))  # an asymmetric pixel, so an image is not equal to its flip
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url_images(body: dict) -> list[Image.Image]:
    images = []
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,")
                    images.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1], validate=True))))
    return images


def all_text(body: dict) -> str:
    texts = []
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part["text"] for part in content if part["type"] == "text")
    return "\n".join(texts)


def run(coroutine):
    return asyncio.run(coroutine)


# ----------------------------------------------------------------------------------------------------------------
# Client


def test_client_validates_arguments():
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleClient("ftp://host/v1", MODEL)
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleClient("localhost:8000", MODEL)
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleClient("", MODEL)
    with pytest.raises(ValueError, match="model"):
        OpenAICompatibleClient("http://localhost:8000", " ")
    with pytest.raises(ValueError, match="timeout"):
        OpenAICompatibleClient("http://localhost:8000", MODEL, timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        OpenAICompatibleClient("http://localhost:8000", MODEL, max_retries=-1)
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAICompatibleClient("http://localhost:8000", MODEL, max_concurrency=0)
    with pytest.raises(ValueError, match="extra_body"):
        OpenAICompatibleClient("http://localhost:8000", MODEL, extra_body={"model": "other"})
    with pytest.raises(ValueError, match="deadline"):
        OpenAICompatibleClient("http://localhost:8000", MODEL, deadline=-1)


@pytest.mark.parametrize(
    "base_url, expected",
    [
        ("http://localhost:8000", "http://localhost:8000/v1/chat/completions"),
        ("http://localhost:8000/", "http://localhost:8000/v1/chat/completions"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
        ("https://example.com/api/openai/", "https://example.com/api/openai/chat/completions"),
        ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
    ],
)
def test_chat_completions_url(base_url, expected):
    assert _chat_completions_url(base_url) == expected


def test_api_key_from_environment(server, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test-123")
    client = fast_client(server.url, api_key_env="MY_JUDGE_KEY", extra_body={"temperature": 0.0})
    assert client.chat_sync([{"role": "user", "content": "hi"}], max_tokens=7) == GOOD
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    assert request["body"]["model"] == MODEL
    assert request["body"]["temperature"] == 0.0 and request["body"]["max_tokens"] == 7
    assert "sk-test-123" not in repr(client)


def test_client_usable_from_several_event_loops(server):
    client = fast_client(server.url)
    messages = [{"role": "user", "content": "hi"}]
    assert run(client.chat(messages)) == GOOD
    assert run(client.chat(messages)) == GOOD  # a new loop: the old loop's httpx client must not be reused
    assert client.chat_sync(messages) == GOOD
    results = []
    thread = threading.Thread(target=lambda: results.append(run(client.chat(messages))))
    thread.start()
    thread.join()
    assert results == [GOOD]

    # One long-lived loop in another thread (as TRL runs async rewards) alongside asyncio.run in this one.
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(client.chat(messages), loop)
        assert run(client.chat(messages)) == GOOD
        assert future.result(timeout=10) == GOOD
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join()
        loop.close()
    assert len(server.requests) == 6


def test_client_drops_connections_of_finished_loops(server):
    client = fast_client(server.url)
    for _ in range(5):
        assert run(client.chat([{"role": "user", "content": "hi"}])) == GOOD
    assert len(client._per_loop) <= 1


def test_client_bounds_concurrency(server):
    server.script({"content": GOOD, "delay": 0.1})
    client = fast_client(server.url, max_concurrency=2)

    async def many():
        return await asyncio.gather(*(client.chat([{"role": "user", "content": str(i)}]) for i in range(6)))

    assert run(many()) == [GOOD] * 6
    assert server.max_in_flight == 2


def test_retry_after_parsing():
    assert _parse_retry_after("2") == 2.0
    assert _parse_retry_after("0.5") == 0.5
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= _parse_retry_after(future) <= 31
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_client_errors_are_typed(server):
    messages = [{"role": "user", "content": "hi"}]
    server.script({"status": 401, "error": "Invalid API key"})
    client = fast_client(server.url, api_key_env="JUDGE_KEY_FOR_TEST")
    with pytest.raises(JudgeError) as error:
        client.chat_sync(messages)
    assert error.value.kind == "auth" and error.value.status == 401
    assert "JUDGE_KEY_FOR_TEST" in str(error.value) and "Invalid API key" in str(error.value)
    assert len(server.requests) == 1  # never retried

    server.requests.clear()
    server.script({"status": 404, "error": "The model `judge-vl-7b` does not exist."})
    with pytest.raises(JudgeError) as error:
        client.chat_sync(messages)
    assert error.value.kind == "http" and MODEL in str(error.value) and "/v1/models" in str(error.value)
    assert len(server.requests) == 1

    server.script({"raw": "<html>proxy error</html>"})
    with pytest.raises(JudgeError) as error:
        client.chat_sync(messages)
    assert error.value.kind == "response"

    server.script({"content": "", "finish_reason": "length"})
    with pytest.raises(JudgeError, match="max_tokens") as error:
        client.chat_sync(messages)
    assert error.value.kind == "response"


def test_connection_refused_is_retried_then_typed():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = fast_client(f"http://127.0.0.1:{port}", max_retries=2)
    with pytest.raises(JudgeError) as error:
        client.chat_sync([{"role": "user", "content": "hi"}])
    assert error.value.kind == "connect" and "3 attempts" in str(error.value)
    assert client.stats["requests"] == 3 and client.stats["retries/connect"] == 2


# ----------------------------------------------------------------------------------------------------------------
# Images and JSON helpers


def test_image_to_data_url_round_trips():
    data = png()
    url = image_to_data_url(data)
    assert url.startswith("data:image/png;base64,") and decode_data_url(url) == data  # bytes pass through
    image = Image.open(io.BytesIO(data))
    decoded = Image.open(io.BytesIO(decode_data_url(image_to_data_url(image))))
    assert decoded.size == image.size and list(decoded.getdata()) == list(image.convert("RGB").getdata())
    jpeg = io.BytesIO()
    image.save(jpeg, format="JPEG")
    assert image_to_data_url(jpeg.getvalue()).startswith("data:image/jpeg;base64,")
    assert image_content(data) == {"type": "image_url", "image_url": {"url": url}}
    assert image_content(data, detail="high")["image_url"]["detail"] == "high"
    with pytest.raises(ValueError, match="PNG"):
        image_to_data_url(b"not an image")
    with pytest.raises(TypeError):
        image_to_data_url(42)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you go:\n```json\n{"a": 1, "b": "x"}\n```\nThanks!', {"a": 1, "b": "x"}),
        ("```\n{'a': 1, 'b': 'it\\'s fine',}\n```", {"a": 1, "b": "it's fine"}),
        ('{"a": [1, 2, ], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('<think>Maybe {"a": 0}? Let me think.</think>\n{"a": 2}', {"a": 2}),
        ('The template opened the block; I reason here {"a": 9}</think>{"a": 3}', {"a": 3}),
        ('Example: {"a": 0}. My grade: {"a": 4}', {"a": 4}),
        ('{"r": "he wrote \\"}\\" and {braces}", "a": 5}', {"r": 'he wrote "}" and {braces}', "a": 5}),
        (
            "{a: 6, ok: True, none: None, // why\n /* block */ list: [1,2,],}",
            {"a": 6, "ok": True, "none": None, "list": [1, 2]},
        ),
        ('{"a": "35", "b": "7/10"}', {"a": "35", "b": "7/10"}),
        ('a stray { brace, then {"a": 7}', {"a": 7}),
        (
            '{"rationale": "Looks good", "alignment": 30, "aesthetics": 2',
            {"rationale": "Looks good", "alignment": 30, "aesthetics": 2},
        ),
        ('{"x": "multi\nline"}', {"x": "multi\nline"}),
        ('{"outer": {"inner": [1, {"deep": true}]}}', {"outer": {"inner": [1, {"deep": True}]}}),
        ("[1, 2, 3]", None),
        ("no JSON at all", None),
        ("{not: valid: json}", None),
        ("", None),
    ],
)
def test_parse_json_object(text, expected):
    assert parse_json_object(text) == expected


def test_parse_json_object_on_long_and_hostile_text():
    start = time.perf_counter()
    assert parse_json_object("{[" * 10_000 + ' then the answer {"a": 1}') == {"a": 1}
    assert parse_json_object("x" * 50_000 + '{"a": 2}') == {"a": 2}
    assert parse_json_object("[" * 5_000 + "]" * 4_000) is None
    # Apostrophes and an unbalanced quote inside bracketed prose do not hide the answer.
    assert parse_json_object("""(see [the page's 5" hero]) and {"a": 3} [don't]""") == {"a": 3}
    assert time.perf_counter() - start < 5.0


def test_strip_reasoning_and_coerce_number():
    assert strip_reasoning("<think>a</think>b<reasoning>c</reasoning>d").split() == ["b", "d"]
    for value, expected in [(3, 3.0), (2.5, 2.5), ("35", 35.0), ("35/40", 35.0), (" 7.5 points", 7.5), ("[3]", 3.0)]:
        assert coerce_number(value) == expected
    for value in (True, None, "high", [1], float("nan"), "inf"):
        assert coerce_number(value) is None


# ----------------------------------------------------------------------------------------------------------------
# Page judge over HTTP


def page_judge(server, **client_kwargs) -> VLMPageJudge:
    kwargs = {"timeout": 5.0, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, "api_key_env": None}
    return VLMPageJudge.from_endpoint(server.url, MODEL, client_kwargs={**kwargs, **client_kwargs})


def render(screenshot=None) -> RenderResult:
    return RenderResult(ok=True, screenshot=png() if screenshot is None else screenshot)


def test_page_judge_good_answer_and_request(server):
    judge = page_judge(server)
    screenshot = png(80, 60)
    score = run(judge.score_page("A landing page for a coffee shop", render(screenshot)))
    assert score == PageScore(33.0, 24.0, 27.0, "Clean hero, clear CTA.")
    assert score.total == 84.0
    assert not judge.failures and judge.num_calls == 1 and judge.clamped == 0

    body = server.requests[0]["body"]
    assert body["model"] == MODEL and body["temperature"] == 0.0 and body["max_tokens"] == 1024
    assert body["messages"][0] == {"role": "system", "content": PAGE_SYSTEM_PROMPT}
    text = all_text(body)
    for fragment in (
        "Instruction alignment (0-40)",
        "Aesthetics and readability (0-30)",
        "Structural integrity (0-30)",
    ):
        assert fragment in text
    assert "A landing page for a coffee shop" in text
    (image,) = data_url_images(body)
    url = body["messages"][1]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == screenshot  # sent as rendered, byte for byte
    assert image.size == (80, 60) and image.getpixel((0, 0))[:3] == (255, 0, 0)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("```json\n" + GOOD + "\n```", (33, 24, 27)),
        ('<think>The hero is nice {"alignment": 1}</think>\nFinal answer: ' + GOOD, (33, 24, 27)),
        ("{'alignment': '35/40', 'aesthetics': '20', 'structure': 25.5, 'rationale': 'ok',}", (35, 20, 25.5)),
        ('{"Instruction Alignment": 30, "Aesthetics & Readability": 20, "Structural Integrity": 10}', (30, 20, 10)),
        ('{"scores": {"alignment": 12, "aesthetics": 13, "structure": 14}, "rationale": "nested"}', (12, 13, 14)),
    ],
)
def test_page_judge_reads_messy_answers(server, answer, expected):
    server.script({"content": answer})
    judge = page_judge(server)
    score = run(judge.score_page("anything", render()))
    assert (score.alignment, score.aesthetics, score.structure) == expected
    assert not judge.failures


@pytest.mark.parametrize(
    "answer",
    [
        "The page looks great, I would give it a high score overall.",
        '```json\n{"alignment": thirty, "aesthetics": 20\n```',
        '{"alignment": 30, "aesthetics": 20}',  # a sub-score missing
        '{"alignment": "high", "aesthetics": 20, "structure": 20}',
        "[30, 20, 20]",
    ],
)
def test_page_judge_malformed_answer_is_none_and_counted(server, answer):
    server.script({"content": answer})
    judge = page_judge(server)
    assert run(judge.score_page("anything", render())) is None
    assert judge.failures == {"parse": 1}
    assert len(server.requests) == 1  # a parse failure is not an HTTP failure: no retry


def test_page_judge_clamps_out_of_range_scores(server):
    server.script({"content": '{"alignment": 55, "aesthetics": -3, "structure": "31/30", "rationale": 7}'})
    judge = page_judge(server)
    score = run(judge.score_page("anything", render()))
    assert (score.alignment, score.aesthetics, score.structure, score.rationale) == (40.0, 0.0, 30.0, "7")
    assert judge.clamped == 1 and not judge.failures


def test_page_judge_slow_answer_times_out_fast(server):
    server.script({"content": GOOD, "delay": 30})
    judge = page_judge(server, timeout=0.3, max_retries=0)
    start = time.perf_counter()
    assert run(judge.score_page("anything", render())) is None
    assert time.perf_counter() - start < 3
    assert judge.failures == {"timeout": 1}

    # The overall deadline stops retries that would each be allowed their full per-request timeout.
    judge = page_judge(server, timeout=0.3, max_retries=5, deadline=0.5)
    start = time.perf_counter()
    assert run(judge.score_page("anything", render())) is None
    assert time.perf_counter() - start < 3
    assert judge.failures == {"timeout": 1}


def test_page_judge_retries_a_500_then_succeeds(server):
    server.script({"status": 500, "error": "CUDA out of memory"}, {"content": GOOD})
    judge = page_judge(server)
    assert run(judge.score_page("anything", render())).total == 84.0
    assert len(server.requests) == 2 and not judge.failures
    assert judge.backend.stats["retries/server"] == 1


def test_page_judge_persistent_500_is_none(server):
    server.script({"status": 503, "error": "overloaded"})
    judge = page_judge(server, max_retries=2)
    assert run(judge.score_page("anything", render())) is None
    assert len(server.requests) == 3 and judge.failures == {"server": 1}


def test_page_judge_401_is_not_retried(server):
    server.script({"status": 401, "error": "Incorrect API key provided"})
    judge = page_judge(server)
    assert run(judge.score_page("anything", render())) is None
    assert len(server.requests) == 1 and judge.failures == {"auth": 1}


def test_page_judge_honours_retry_after(server):
    server.script({"status": 429, "error": "slow down", "headers": {"Retry-After": "0.4"}}, {"content": GOOD})
    judge = page_judge(server, backoff=0.001)
    start = time.perf_counter()
    assert run(judge.score_page("anything", render())).total == 84.0
    assert time.perf_counter() - start >= 0.4  # backoff alone would have waited ~1 ms
    assert len(server.requests) == 2 and not judge.failures


def test_page_judge_retry_after_beyond_deadline_gives_up(server):
    server.script({"status": 429, "error": "slow down", "headers": {"Retry-After": "120"}})
    judge = page_judge(server, deadline=2.0)
    start = time.perf_counter()
    assert run(judge.score_page("anything", render())) is None
    assert time.perf_counter() - start < 1.5 and len(server.requests) == 1
    assert judge.failures == {"rate_limit": 1}


@pytest.mark.parametrize("mode, expected_size", [("resize", (20, 200)), ("crop", (100, 200))])
def test_page_judge_fits_tall_screenshots(server, mode, expected_size):
    image = Image.new("RGB", (100, 1000), (255, 255, 255))
    for y in range(1000):
        image.putpixel((0, y), (y % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    judge = VLMPageJudge.from_endpoint(
        server.url, MODEL, client_kwargs={"api_key_env": None}, max_image_height=200, tall_image_mode=mode
    )
    assert run(judge.score_page("anything", render(buffer.getvalue()))) is not None
    (sent,) = data_url_images(server.requests[0]["body"])
    assert sent.size == expected_size
    if mode == "crop":
        assert [sent.getpixel((0, y))[0] for y in range(200)] == list(range(200))
    assert ("downscaled" if mode == "resize" else "cropped") in all_text(server.requests[0]["body"])


def test_page_judge_argument_errors(server):
    judge = page_judge(server)
    with pytest.raises(ValueError, match="screenshot"):
        run(judge.score_page("anything", RenderResult(ok=False, screenshot=None, error="timeout")))
    with pytest.raises(ValueError, match="not a readable image"):
        run(judge.score_page("anything", RenderResult(ok=True, screenshot=b"garbage")))
    with pytest.raises(TypeError, match="generate"):
        VLMPageJudge(object())
    with pytest.raises(ValueError, match="tall_image_mode"):
        VLMPageJudge(judge.backend, tall_image_mode="squash")
    assert not server.requests


def test_page_judge_rejects_blocking_backends():
    class Blocking:
        def generate(self, messages):
            return GOOD

    with pytest.raises(TypeError, match="async"):
        run(VLMPageJudge(Blocking()).score_page("anything", render()))


def test_judges_close_only_their_own_backend(server):
    client = fast_client(server.url)
    shared_page, shared_interaction = VLMPageJudge(client), VLMInteractionJudge(client)

    async def use_and_close():
        await shared_page.score_page("anything", render())
        await shared_page.aclose()
        assert asyncio.get_running_loop() in client._per_loop  # the shared client was left open
        # The shared client still works for the other judge after the first judge was closed.
        return await shared_interaction.grade_interaction("x", Action("click", mark=0), png(), png())

    server.script({"content": GOOD}, {"content": '{"success": 1}'})
    assert run(use_and_close()) is True

    owned = VLMPageJudge.from_endpoint(server.url, MODEL, client_kwargs={"api_key_env": None})

    async def use_and_close_owned():
        await owned.score_page("anything", render())
        await owned.aclose()
        return len(owned.backend._per_loop)

    assert run(use_and_close_owned()) == 0


def test_page_judge_propagates_backend_bugs():
    class Buggy:
        async def generate(self, messages):
            raise KeyError("a bug, not a judge failure")

    with pytest.raises(KeyError):
        run(VLMPageJudge(Buggy()).score_page("anything", render()))


# ----------------------------------------------------------------------------------------------------------------
# Interaction judge


ELEMENTS = [
    {"mark": 0, "tag": "button", "text": "Start game", "role": "button", "type": "", "box": [10, 10, 80, 30]},
    {"mark": 1, "tag": "input", "text": "", "role": "textbox", "type": "text", "box": [10, 50, 200, 30]},
    {"mark": 2, "tag": "a", "text": "About   us", "role": "link", "type": "", "box": [10, 90, 60, 20]},
]


def test_planner_validates_actions(server):
    plan = [
        {"action": "click", "mark": 0, "expectation": "the game starts"},
        {"action": "type", "mark": "1", "text": "hello", "expectation": "the greeting appears"},
        {"action": "click", "mark": 9, "expectation": "unknown mark"},
        {"action": "hover", "mark": 0},
        {"action": "key", "key": "up", "expectation": "the snake turns up"},
        {"action": "key", "key": "F13"},
        {"action": "type", "mark": 1, "text": ""},
        {"action": "wait", "seconds": "60", "expectation": "the timer runs"},
        {"action": "key", "key": "space"},
        {"action": "click", "mark": 2},
    ]
    server.script({"content": "Here is my plan:\n```json\n" + json.dumps(plan) + "\n```"})
    judge = VLMInteractionJudge.from_endpoint(server.url, MODEL, client_kwargs={"api_key_env": None}, max_wait=5.0)
    screenshot = png(120, 90)
    actions = run(judge.plan_interactions("A snake game", screenshot, ELEMENTS, max_actions=5))
    assert actions == [
        Action("click", mark=0, expectation="the game starts"),
        Action("type", mark=1, text="hello", expectation="the greeting appears"),
        Action("key", key="ArrowUp", expectation="the snake turns up"),
        Action("wait", seconds=5.0, expectation="the timer runs"),
        Action("key", key="Space"),
    ]
    assert judge.dropped_actions == {
        "unknown_mark": 1,
        "unknown_kind": 1,
        "bad_key": 1,
        "missing_text": 1,
        "over_max_actions": 1,
    }
    assert not judge.failures

    body = server.requests[0]["body"]
    text = all_text(body)
    assert "A snake game" in text and "at most 5 interactions" in text
    assert '[0] <button>: "Start game"' in text and '[1] <input> (type=text, role=textbox): ""' in text
    assert '[2] <a> (role=link): "About us"' in text
    (image,) = data_url_images(body)
    assert image.size == (120, 90)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('{"actions": [{"action": "click", "mark": 0}]}', [Action("click", mark=0)]),
        ('{"action": "key", "key": "ArrowLeft"}', [Action("key", key="ArrowLeft")]),
        (
            '[{"action": "click", "mark": 0}, {"action": "finish"}, {"action": "click", "mark": 2}]',
            [Action("click", mark=0), Action("finish")],
        ),
        ("Nothing on this page is interactive.\n[]", []),
    ],
)
def test_planner_answer_shapes(answer, expected):
    judge = VLMInteractionJudge(_Fixed(answer))
    assert run(judge.plan_interactions("x", png(), ELEMENTS)) == expected
    assert not judge.failures


@pytest.mark.parametrize(
    "answer",
    ["I would click the start button.", '[{"action": "click", "mark": 42}, {"action": "dance"}]'],
)
def test_planner_unusable_answer_is_none(answer):
    judge = VLMInteractionJudge(_Fixed(answer))
    assert run(judge.plan_interactions("x", png(), ELEMENTS)) is None
    assert judge.failures == {"parse": 1}


def test_planner_argument_errors():
    judge = VLMInteractionJudge(_Fixed("[]"))
    with pytest.raises(ValueError, match="max_actions"):
        run(judge.plan_interactions("x", png(), ELEMENTS, max_actions=0))
    with pytest.raises(ValueError, match="mark"):
        run(judge.plan_interactions("x", png(), [{"tag": "button"}]))


def test_normalise_key():
    for key, expected in [
        ("ArrowUp", "ArrowUp"),
        ("up", "ArrowUp"),
        ("Left Arrow", "ArrowLeft"),
        ("arrow-right", "ArrowRight"),
        ("SPACE", "Space"),
        (" ", "Space"),
        ("return", "Enter"),
        ("esc", "Escape"),
        ("w", "w"),
        ("KeyW", "KeyW"),
        ("Digit3", "Digit3"),
    ]:
        assert normalise_key(key) == expected, key
    for key in ("F13", "", None, 3, "ctrl+alt+del", "é"):
        assert normalise_key(key) is None, key


class _Fixed:
    """A backend that always gives the same answer and records the messages it got."""

    def __init__(self, answer):
        self.answer = answer
        self.messages = []

    async def generate(self, messages):
        self.messages.append(messages)
        return self.answer


def test_grader_request_and_answers(server):
    judge = VLMInteractionJudge.from_endpoint(server.url, MODEL, client_kwargs={"api_key_env": None})
    before, after = png(60, 40, (0, 0, 0)), png(60, 40, (250, 250, 250))
    action = Action("type", mark=1, text="hello", expectation="a greeting appears")
    server.script({"content": '{"reason": "The greeting appeared.", "success": 1}'})
    assert run(judge.grade_interaction("A greeter", action, before, after)) is True

    body = server.requests[0]["body"]
    text = all_text(body)
    assert 'typed "hello" into the element labelled [1], then pressed Enter' in text
    assert "Expected outcome: a greeting appears" in text and "A greeter" in text
    sent_before, sent_after = data_url_images(body)
    assert sent_before.getpixel((5, 5))[:3] == (0, 0, 0) and sent_after.getpixel((5, 5))[:3] == (250, 250, 250)

    for answer, expected in [
        ('{"reason": "nothing changed", "success": 0}', False),
        ("```json\n{'success': 'yes', 'reason': 'ok'}\n```", True),
        ('<think>hmm</think>{"success": false}', False),
        ('{"reason": "fine", "success": "pass"}', True),
    ]:
        server.script({"content": answer})
        assert run(judge.grade_interaction("A greeter", action, before, after)) is expected, answer
    assert not judge.failures

    for answer in ("It worked.", '{"success": 0.5}', '{"reason": "no verdict"}'):
        server.script({"content": answer})
        assert run(judge.grade_interaction("A greeter", action, before, after)) is None
    assert judge.failures == {"parse": 3}

    server.script({"status": 500})
    judge = VLMInteractionJudge.from_endpoint(
        server.url, MODEL, client_kwargs={"api_key_env": None, "max_retries": 1, "backoff": 0.01}
    )
    assert run(judge.grade_interaction("A greeter", action, before, after)) is None
    assert judge.failures == {"server": 1}


def test_describe_action():
    assert describe_action(Action("click", mark=3)) == "clicked the element labelled [3]"
    assert describe_action(Action("key", key="ArrowUp")) == "pressed the ArrowUp key"
    assert describe_action(Action("wait", seconds=2.0)) == "waited 2 seconds"


# ----------------------------------------------------------------------------------------------------------------
# In-process transformers backend: a tiny random Qwen2-VL, saved and loaded back like a user's checkpoint

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_vlm_path(tmp_path_factory):
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    from trl_ext.testing import make_tokenizer

    try:
        from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    except ImportError:  # pragma: no cover
        pytest.skip("this transformers has no Qwen2-VL processors")

    tokenizer = make_tokenizer(with_mask_token=False)
    tokenizer.add_tokens(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"], special_tokens=True)
    processor = Qwen2VLProcessor(
        # Few pixels per image, so that a 1280 px screenshot becomes a handful of vision tokens.
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ("<|image_pad|>", "<|video_pad|>")}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    path = tmp_path_factory.mktemp("tiny-qwen2-vl")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_transformers_backend_end_to_end(tiny_vlm_path):
    judge = VLMPageJudge.from_pretrained(
        tiny_vlm_path, backend_kwargs={"max_new_tokens": 12, "device": "cpu"}, max_image_height=512
    )
    backend = judge.backend
    assert isinstance(backend, TransformersVLMBackend)
    screenshot = png(1280, 960)

    async def score_three():
        return await asyncio.gather(*(judge.score_page(f"page {i}", render(screenshot)) for i in range(3)))

    # A random model cannot answer in JSON: each page is a counted parse failure, never a score or a crash.
    assert run(score_three()) == [None, None, None]
    assert judge.failures == {"parse": 3}
    assert backend.stats["requests"] == 3 and backend.stats["batches"] < 3  # concurrent requests were batched

    # The backend's answer is exactly the greedy continuation of the chat-templated prompt, computed by hand.
    import torch

    messages = judge.build_messages("a blog", screenshot)
    processor, model = backend.processor, backend.model
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": messages[0]["content"]}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": messages[1]["content"][0]["text"]},
                {"type": "image", "image": Image.open(io.BytesIO(screenshot)).convert("RGB")},
                {"type": "text", "text": messages[1]["content"][2]["text"]},
            ],
        },
    ]
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["pixel_values"].shape[0] > 0
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    expected = processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert run(backend.generate(messages)) == expected
    assert backend.generate_batch([messages, messages]) == [expected, expected]

    run(judge.aclose())
    assert not backend._worker.is_alive()


def test_transformers_backend_batch_failure_falls_back_per_request(tiny_vlm_path):
    backend = TransformersVLMBackend(tiny_vlm_path, max_new_tokens=4, device="cpu", batch_wait=0.05)
    original = backend._generate_locked

    def flaky(conversations):
        if len(conversations) > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        if "poison" in json.dumps(conversations[0], default=str):
            raise ValueError("bad request")
        return original(conversations)

    backend._generate_locked = flaky
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello"}, image_content(png())]}]
    poison = [{"role": "user", "content": "poison"}]

    async def three():
        return await asyncio.gather(
            backend.generate(messages), backend.generate(poison), backend.generate(messages), return_exceptions=True
        )

    first, second, third = run(three())
    assert isinstance(first, str) and first == third
    assert isinstance(second, JudgeError) and second.kind == "backend" and "bad request" in str(second)
    assert backend.stats["batch_fallbacks"] == 1
    backend.close()


def test_transformers_backend_argument_errors(tiny_vlm_path):
    with pytest.raises(ValueError, match="processor"):
        TransformersVLMBackend(object())
    with pytest.raises(ValueError, match="max_new_tokens"):
        TransformersVLMBackend(tiny_vlm_path, max_new_tokens=0)
