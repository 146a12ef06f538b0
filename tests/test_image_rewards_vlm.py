"""
The VLM realism reward against a real OpenAI-compatible HTTP server started by the test (`/v1/chat/completions` on
127.0.0.1): well-formed and malformed answers, 500s, retries, timeouts, refused connections, and pickling.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from trl_ext.rewards.image import VLMRealismReward, parse_score
from trl_ext.testing_rewards import make_test_images

FAST_CLIENT = {"max_retries": 0, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0}


def question_of(body: dict) -> str:
    text = body["messages"][0]["content"][0]["text"]
    if "0 and 5" in text:
        return "quality"
    return "ai_generated" if "AI-generated" in text else "strange_features"


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when the reward fires dozens of requests at once.
    request_queue_size = 128
    daemon_threads = True


class JudgeServer:
    """An OpenAI-compatible chat-completions server whose answers come from `self.respond(body, index)`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.respond = lambda body, index: (200, {"score": 1})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    index = len(server.requests)
                    server.requests.append({"path": self.path, "body": body})
                status, answer, *delay = server.respond(body, index)
                if delay:
                    time.sleep(delay[0])
                if status == 200 and not isinstance(answer, bytes):
                    content = answer if isinstance(answer, str) else json.dumps(answer)
                    answer = json.dumps(
                        {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
                    ).encode()
                elif not isinstance(answer, bytes):
                    answer = json.dumps({"error": {"message": str(answer)}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the client gave up (timeout tests)
                    pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    judge_server = JudgeServer()
    yield judge_server
    judge_server.close()


@pytest.fixture(scope="module")
def images():
    return make_test_images(3, size=40, seed=3)


def make_reward(server, **kwargs):
    client = {**FAST_CLIENT, **kwargs.pop("client_kwargs", {})}
    return VLMRealismReward(base_url=server.base_url, model="judge-model", client_kwargs=client, **kwargs)


def test_scores_and_requests(server, images):
    answers = {
        "quality": 'The image shows a car.\n```json\n{"description": "a car", "score": 3.5, "explanation": "ok",}\n```',
        "ai_generated": '```json\n{\n    "score": 0,\n}\n```',
        "strange_features": "{'score': 1}",
    }
    server.respond = lambda body, index: (200, answers[question_of(body)])
    reward = make_reward(server)
    logged = {}
    scores = asyncio.run(
        reward(prompts=["p"] * 3, completions=images, caption=["a red car"] * 3, log_metric=logged.__setitem__)
    )
    assert scores == [0.25 * 3.5 + 0.25 * 0 + 0.25 * 1] * 3
    assert len(server.requests) == 9 and {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    body = server.requests[0]["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0 and body["max_tokens"] == 512
    text, image_part = body["messages"][0]["content"]
    quality_prompts = [r["body"] for r in server.requests if question_of(r["body"]) == "quality"]
    assert all('"a red car"' in b["messages"][0]["content"][0]["text"] for b in quality_prompts)
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (40, 40)
    assert logged["image_reward/vlm_realism/mean"] == pytest.approx(1.125)
    assert logged["image_reward/vlm_realism/quality/mean"] == pytest.approx(3.5)
    assert logged["image_reward/vlm_realism/failures/parse"] == 0.0
    assert not reward.counters


def test_class_labels_and_question_subsets(server, images):
    server.respond = lambda body, index: (200, {"score": 4})
    reward = make_reward(server, questions={"quality": 1.0}, image_format="png")
    assert reward.scores(prompts=None, completions=images[:1], class_label=[0]) == [4.0]
    body = server.requests[0]["body"]
    assert '"a photo of tench, Tinca tinca"' in body["messages"][0]["content"][0]["text"]
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="Unknown realism questions"):
        make_reward(server, questions={"sharpness": 1.0})


def test_malformed_answers_are_parsed_or_counted(server, images):
    by_caption = {
        "prose": "Overall I would give it a score: 4 out of 5.",
        "reasoning": '<think>maybe {"score": 1}</think>{"Score": "3/5"}',
        "refusal": "I cannot judge this image.",
        "out_of_range": '{"score": 7}',
    }

    def respond(body, index):
        text = body["messages"][0]["content"][0]["text"]
        if question_of(body) != "quality":
            return 200, '{"score": 1}'
        caption = next(c for c in by_caption if f'"{c}"' in text)
        return 200, by_caption[caption]

    server.respond = respond
    reward = make_reward(server)
    scores = reward.scores(prompts=None, completions=images[:1] * 4, caption=list(by_caption))
    assert scores == [0.25 * 4 + 0.5, 0.25 * 3 + 0.5, None, None]
    assert reward.counters == {"parse": 2}


def test_parse_score():
    assert parse_score('```json\n{"score": 2.5,}\n```', 5) == 2.5
    assert parse_score("{'SCORE': '4/5'}", 5) == 4.0
    assert parse_score('{"description": "a dog", "score": 3', 5) == 3.0  # cut off by max_tokens
    assert parse_score('first {"score": 1} then {"score": 0}', 1) == 0.0  # the last object wins
    assert parse_score("Score = 0.5", 1) == 0.5
    assert parse_score('{"score": -1}', 5) is None
    assert parse_score('{"score": 1.5}', 1) is None
    assert parse_score('{"score": true}', 1) is None
    assert parse_score("no idea", 5) is None


def test_server_errors_retries_and_all_failed_warning(server, images, caplog):
    server.respond = lambda body, index: (500, "model crashed")
    reward = make_reward(server, client_kwargs={"max_retries": 1})
    logged = {}
    with caplog.at_level(logging.WARNING, logger="trl_ext.rewards.image.vlm"):
        scores = asyncio.run(reward(prompts=["a", "b"], completions=images[:2], log_metric=logged.__setitem__))
    assert scores == [None, None]
    assert reward.counters == {"server": 6}
    assert len(server.requests) == 12  # 6 questions x (1 attempt + 1 retry)
    assert logged["image_reward/vlm_realism/failures/server"] == 6.0
    assert "image_reward/vlm_realism/mean" not in logged
    assert any("failed for every image" in record.getMessage() for record in caplog.records)

    # Transient errors: the first attempt of every request fails, the retry succeeds.
    seen = set()

    def flaky(body, index):
        key = json.dumps(body["messages"])
        if key in seen:
            return 200, {"score": 1}
        seen.add(key)
        return 503, "overloaded"

    server.respond = flaky
    retrying = make_reward(server, client_kwargs={"max_retries": 2})
    assert retrying.scores(prompts=["a"], completions=images[:1]) == [0.25 + 0.25 + 0.25]
    assert not retrying.counters


def test_timeouts_and_unreachable_servers(server, images):
    server.respond = lambda body, index: (200, {"score": 1}, 1.5 if question_of(body) == "quality" else 0)
    reward = make_reward(server, client_kwargs={"timeout": 0.3})
    start = time.monotonic()
    assert reward.scores(prompts=["a"], completions=images[:1]) == [None]
    assert time.monotonic() - start < 1.4
    assert reward.counters == {"timeout": 1}

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = VLMRealismReward(base_url=f"http://127.0.0.1:{port}/v1", model="m", client_kwargs=FAST_CLIENT)
    assert dead.scores(prompts=["a"], completions=images[:1]) == [None]
    assert dead.counters == {"connect": 3}


def test_trl_sees_an_async_reward_and_pickling(server, images):
    from trl.trainer.utils import is_async_callable

    server.respond = lambda body, index: (200, {"score": 1})
    reward = make_reward(server)
    assert is_async_callable(reward)
    assert reward.scores(prompts=["a"], completions=images[:1]) == [0.75]
    restored = pickle.loads(pickle.dumps(reward))
    assert restored._backend is None and restored.scores(prompts=["a"], completions=images[:1]) == [0.75]

    class Backend:
        async def generate(self, messages):
            return '{"score": 1}'

    in_memory = VLMRealismReward(Backend())
    assert in_memory.scores(prompts=["a"], completions=images[:1]) == [0.75]
    with pytest.raises(TypeError, match="backend object"):
        pickle.dumps(in_memory)
    with pytest.raises(TypeError, match="async generate"):
        VLMRealismReward(object())
    with pytest.raises(RuntimeError, match="await"):

        async def inside_loop():
            reward.scores(prompts=["a"], completions=images[:1])

        asyncio.run(inside_loop())


def test_in_process_transformers_backend_is_wired(monkeypatch, images):
    import trl_ext.web.vlm_judge as vlm_judge

    built = []

    class FakeTransformersBackend:
        def __init__(self, model, **kwargs):
            built.append((model, kwargs))

        async def generate(self, messages):
            return '{"score": 1}'

        def close(self):
            built.append("closed")

    monkeypatch.setattr(vlm_judge, "TransformersVLMBackend", FakeTransformersBackend)
    reward = VLMRealismReward(model="/models/qwen-vl", max_tokens=64, client_kwargs={"max_batch_size": 4})
    assert not built  # nothing is loaded before the first call
    assert reward.scores(prompts=["a", "b"], completions=images[:2]) == [0.75, 0.75]
    assert built == [
        ("/models/qwen-vl", {"max_new_tokens": 64, "do_sample": False, "generation_kwargs": {}, "max_batch_size": 4})
    ]
    reward.close()
    assert built[-1] == "closed"
