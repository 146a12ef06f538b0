"""E2B cloud backend: each program runs in its own remote sandbox (`e2b_code_interpreter.AsyncSandbox`)."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Sequence
from typing import Any

from .base import BACKEND_ERROR, OUTER_TIMEOUT, SANDBOX_START, CodeSandbox, SandboxInfraError, TestResult

# Extra seconds allowed on top of the per-test timeout before our own `asyncio.wait_for` gives up on a call.
_CALL_GRACE = 5.0


class E2BSandbox(CodeSandbox):
    """
    Runs each program in a fresh [E2B](https://e2b.dev) sandbox, killed afterwards whatever happens.

    Each test is sent, in a dedicated code context, as `code + "\\n\\n" + test` in its own `run_code` call (so a test does not depend on the state
    left by another), with E2B's execution timeout and an outer `asyncio.wait_for`. A test that times out fails alone:
    the code context is restarted before the next test. Failures to create the sandbox, E2B errors and outer timeouts
    raise [`SandboxInfraError`] (the reward becomes `None`), never a zero.

    Args:
        max_concurrency (`int`, *optional*, defaults to `8`):
            Maximum number of sandboxes alive at once.
        template (`str`, *optional*):
            E2B template; defaults to E2B's code-interpreter template.
        api_key (`str`, *optional*):
            E2B API key. Defaults to the `E2B_API_KEY` environment variable; a `ValueError` is raised when neither is
            set.
        sandbox_lifetime (`int`, *optional*, defaults to `300`):
            Seconds after which E2B kills the sandbox on its own, a safety net should `kill()` never reach it.
        start_timeout (`float`, *optional*, defaults to `60.0`):
            Seconds allowed for creating a sandbox.
        request_timeout (`float`, *optional*, defaults to `30.0`):
            Connection timeout of E2B's HTTP requests.
        sandbox_cls (`type`, *optional*):
            Class providing `create`, and instances with `create_code_context`, `run_code`, `restart_code_context` and
            `kill`; defaults to
            `e2b_code_interpreter.AsyncSandbox`. Meant for tests.
    """

    def __init__(
        self,
        max_concurrency: int = 8,
        template: str | None = None,
        api_key: str | None = None,
        sandbox_lifetime: int = 300,
        start_timeout: float = 60.0,
        request_timeout: float = 30.0,
        sandbox_cls: type | None = None,
    ):
        self.api_key = api_key or os.environ.get("E2B_API_KEY")
        if not self.api_key:
            raise ValueError(
                "E2BSandbox needs an E2B API key: set the E2B_API_KEY environment variable or pass `api_key=`. "
                "Use `LocalSandbox` to run code on this machine instead."
            )
        if sandbox_cls is None:
            try:
                from e2b_code_interpreter import AsyncSandbox as sandbox_cls
            except ImportError as error:
                raise ImportError(
                    "E2BSandbox requires `e2b-code-interpreter`: `pip install 'e2b-code-interpreter>=2,<3'`."
                ) from error
        self.sandbox_cls = sandbox_cls
        self.max_concurrency = max_concurrency
        self.template = template
        self.sandbox_lifetime = sandbox_lifetime
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        # asyncio.Semaphore binds to the loop that first uses it; `run` creates a loop per call, so keep one per loop.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._timeout_errors: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)
        try:
            from e2b.exceptions import TimeoutException

            self._timeout_errors += (TimeoutException,)
        except ImportError:
            pass

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self._semaphores:
            self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return self._semaphores[loop]

    def run(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        from .base import run_coroutine_sync

        return run_coroutine_sync(self.arun(code, tests, timeout))

    async def arun(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        if not tests:
            return []
        async with self._semaphore():
            sandbox = None
            try:
                try:
                    sandbox = await asyncio.wait_for(self._create(), self.start_timeout)
                except asyncio.TimeoutError:
                    raise SandboxInfraError(
                        SANDBOX_START, f"sandbox not created after {self.start_timeout}s"
                    ) from None
                except Exception as error:
                    raise SandboxInfraError(SANDBOX_START, f"{type(error).__name__}: {error}") from error
                context = await self._call(sandbox.create_code_context(), "create_code_context")
                results = []
                for test in tests:
                    results.append(await self._run_test(sandbox, context, code, test, timeout))
                return results
            finally:
                if sandbox is not None:
                    await self._kill(sandbox)

    async def _create(self) -> Any:
        kwargs: dict[str, Any] = {
            "timeout": self.sandbox_lifetime,
            "api_key": self.api_key,
            "request_timeout": self.request_timeout,
            "allow_internet_access": False,
        }
        if self.template is not None:
            kwargs["template"] = self.template
        return await self.sandbox_cls.create(**kwargs)

    async def _call(self, awaitable: Any, what: str) -> Any:
        try:
            return await asyncio.wait_for(awaitable, self.request_timeout + _CALL_GRACE)
        except asyncio.TimeoutError:
            raise SandboxInfraError(OUTER_TIMEOUT, f"{what} timed out") from None
        except Exception as error:
            raise SandboxInfraError(BACKEND_ERROR, f"{what} failed: {type(error).__name__}: {error}") from error

    async def _run_test(self, sandbox: Any, context: Any, code: str, test: str, timeout: float) -> TestResult:
        start = time.monotonic()
        try:
            execution = await asyncio.wait_for(
                sandbox.run_code(
                    f"{code}\n\n{test}", context=context, timeout=timeout, request_timeout=self.request_timeout
                ),
                timeout + _CALL_GRACE,
            )
        except self._timeout_errors:
            # The kernel may still be busy with the runaway test: restart it so the next test starts clean.
            await self._call(sandbox.restart_code_context(context), "restart_code_context")
            return TestResult(False, "timeout", f"exceeded {timeout}s", time.monotonic() - start)
        except Exception as error:
            raise SandboxInfraError(BACKEND_ERROR, f"run_code failed: {type(error).__name__}: {error}") from error
        duration = time.monotonic() - start
        if execution.error is not None:
            detail = f"{execution.error.name}: {execution.error.value}"[:300]
            return TestResult(False, "failed", detail, duration)
        return TestResult(True, "passed", "", duration)

    async def _kill(self, sandbox: Any) -> None:
        try:
            await asyncio.wait_for(sandbox.kill(), self.request_timeout + _CALL_GRACE)
        except Exception:
            # `sandbox_lifetime` bounds how long a sandbox we failed to kill keeps running (and billing).
            pass
