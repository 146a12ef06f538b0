"""
E2B backend against fakes built from the real SDK classes (the E2B cloud is unreachable from CI): `create_autospec`
keeps the method signatures, so a call the real `AsyncSandbox` would reject fails here too.
"""

import asyncio
import os
from unittest.mock import AsyncMock, create_autospec

import pytest

e2b_code_interpreter = pytest.importorskip("e2b_code_interpreter")
from e2b.exceptions import RateLimitException, TimeoutException  # noqa: E402
from e2b_code_interpreter import AsyncSandbox, Context, Execution, ExecutionError  # noqa: E402

from trl_ext.rewards import make_code_pass_rate_reward  # noqa: E402
from trl_ext.sandbox import E2BSandbox, SandboxInfraError  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class FakeE2B:
    """Stands in for the `AsyncSandbox` class: `create` returns autospecced instances running `behaviour`."""

    def __init__(self, behaviour, create_error=None, create_delay=0.0):
        self.behaviour = behaviour
        self.create_error = create_error
        self.create_delay = create_delay
        self.instances = []
        self.alive = 0
        self.max_alive = 0
        self.create = create_autospec(AsyncSandbox.create, side_effect=self._create)

    async def _create(self, *args, **kwargs):
        self.create_kwargs = kwargs
        await asyncio.sleep(self.create_delay)
        if self.create_error is not None:
            raise self.create_error
        sandbox = create_autospec(AsyncSandbox, instance=True)
        sandbox.create_code_context.side_effect = self._context
        sandbox.run_code.side_effect = self.behaviour
        # `kill` is wrapped by the SDK's `class_method_variant` descriptor, which autospec reads as synchronous.
        sandbox.kill = AsyncMock(side_effect=self._kill)
        self.instances.append(sandbox)
        self.alive += 1
        self.max_alive = max(self.max_alive, self.alive)
        return sandbox

    async def _context(self, *args, **kwargs):
        return Context(context_id="ctx-1", language="python", cwd="/home/user")

    async def _kill(self, *args, **kwargs):
        self.alive -= 1
        return True


async def python_like(code, context=None, timeout=None, request_timeout=None, **kwargs):
    """Runs the code for real (trusted test snippets only) and reports like the Jupyter kernel would."""
    await asyncio.sleep(0.01)
    if "while True" in code:
        raise TimeoutException("Execution timed out")
    try:
        exec(code, {})
    except Exception as error:
        return Execution(error=ExecutionError(name=type(error).__name__, value=str(error), traceback=""))
    return Execution()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_test_key")


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY")
    with pytest.raises(ValueError, match="E2B_API_KEY"):
        E2BSandbox(sandbox_cls=FakeE2B(python_like))


def test_pass_fail_and_timeout_per_test():
    fake = FakeE2B(python_like)
    backend = E2BSandbox(sandbox_cls=fake)
    code = "def f(x):\n    return x * 2"
    tests = ["assert f(2) == 4", "assert f(2) == 5", "while True:\n    pass", "assert f(0) == 0"]
    results = backend.run(code, tests, timeout=1.0)
    assert [r.status for r in results] == ["passed", "failed", "timeout", "passed"]
    assert "AssertionError" in results[1].detail
    [sandbox] = fake.instances
    sandbox.restart_code_context.assert_awaited_once()  # after the timeout, so that the next test starts clean
    sandbox.kill.assert_awaited_once()
    assert fake.create_kwargs["api_key"] == "e2b_test_key" and fake.create_kwargs["allow_internet_access"] is False
    for call in sandbox.run_code.await_args_list:
        assert call.kwargs["timeout"] == 1.0 and call.kwargs["context"].id == "ctx-1"


def test_bounded_concurrency_and_reward():
    fake = FakeE2B(python_like, create_delay=0.02)
    backend = E2BSandbox(sandbox_cls=fake, max_concurrency=3)
    reward = make_code_pass_rate_reward(sandbox=backend, asynchronous=True)
    completions = ["```python\ndef f():\n    return 1\n```"] * 10
    scores = asyncio.run(reward(prompts=["p"] * 10, completions=completions, test_cases=[["assert f() == 1"]] * 10))
    assert scores == [1.0] * 10
    assert fake.max_alive <= 3 and fake.alive == 0
    # The sync reward drives the same backend from its own event loop.
    sync_reward = make_code_pass_rate_reward(sandbox=backend)
    assert sync_reward(prompts=["p"], completions=completions[:1], test_cases=[["assert f() == 2"]]) == [0.0]


def test_create_failure_is_an_infra_failure():
    fake = FakeE2B(python_like, create_error=RateLimitException("429"))
    reward = make_code_pass_rate_reward(sandbox=E2BSandbox(sandbox_cls=fake))
    metrics = {}
    scores = reward(
        prompts=["p"], completions=["```python\nx = 1\n```"], test_cases=[["pass"]], log_metric=metrics.__setitem__
    )
    assert scores == [None]
    assert metrics["code_reward/infra_failures/sandbox_start"] == 1


def test_create_hanging_hits_the_outer_timeout():
    fake = FakeE2B(python_like, create_delay=10)
    backend = E2BSandbox(sandbox_cls=fake, start_timeout=0.1)
    with pytest.raises(SandboxInfraError) as error:
        backend.run("x = 1", ["pass"], timeout=1.0)
    assert error.value.kind == "sandbox_start"


def test_backend_error_kills_the_sandbox():
    async def broken(*args, **kwargs):
        raise ConnectionError("connection reset")

    fake = FakeE2B(broken)
    with pytest.raises(SandboxInfraError) as error:
        E2BSandbox(sandbox_cls=fake).run("x = 1", ["pass"], timeout=1.0)
    assert error.value.kind == "backend_error"
    fake.instances[0].kill.assert_awaited_once()
    assert fake.alive == 0


def test_hanging_run_code_hits_outer_wait_for(monkeypatch):
    async def hangs(*args, **kwargs):
        await asyncio.sleep(60)

    monkeypatch.setattr("trl_ext.sandbox.e2b._CALL_GRACE", 0.1)
    fake = FakeE2B(hangs)
    results = E2BSandbox(sandbox_cls=fake).run("x = 1", ["pass"], timeout=0.1)
    assert results[0].status == "timeout"
    assert fake.alive == 0
