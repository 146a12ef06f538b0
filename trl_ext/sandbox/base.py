"""Interface shared by the code-execution backends."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# Infrastructure failure kinds. They are the suffix of the `code_reward/infra_failures/<kind>` metrics, so keep them
# stable.
SANDBOX_START = "sandbox_start"
POOL_OVERLOADED = "pool_overloaded"
OUTER_TIMEOUT = "outer_timeout"
BACKEND_ERROR = "backend_error"
INFRA_FAILURE_KINDS = (SANDBOX_START, POOL_OVERLOADED, OUTER_TIMEOUT, BACKEND_ERROR)


@dataclass
class TestResult:
    """
    Outcome of one test case run against one program.

    Args:
        passed (`bool`):
            Whether the test ran to completion without raising.
        status (`str`):
            One of `"passed"`, `"failed"` (the test or the program raised, or the process died), or `"timeout"`.
        detail (`str`, *optional*, defaults to `""`):
            Short, truncated description of the failure (exception type and message), for debugging only.
        duration (`float`, *optional*, defaults to `0.0`):
            Wall time in seconds spent on this test.
    """

    # Keeps pytest from collecting this dataclass as a test class when it is imported into a test module.
    __test__ = False

    passed: bool
    status: str
    detail: str = ""
    duration: float = 0.0


class SandboxInfraError(RuntimeError):
    """
    The sandbox itself failed (it could not start, the pool was full, the backend errored), so the program's
    correctness is unknown. Rewards turn this into `None` (sample excluded), never into a zero.

    Args:
        kind (`str`):
            One of [`INFRA_FAILURE_KINDS`], used as the metric name suffix.
        message (`str`):
            Human-readable description.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(f"[{kind}] {message}")
        self.kind = kind


class CodeSandbox(ABC):
    """
    Runs an untrusted program against a list of test snippets, each test in isolation and under its own timeout.

    Implementations must never raise for anything the program does (it fails tests instead); they raise
    [`SandboxInfraError`] only when the infrastructure failed.
    """

    @abstractmethod
    def run(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        """
        Run `code` followed by each test snippet of `tests`, each in a fresh interpreter state.

        Args:
            code (`str`):
                The program (e.g. the function definition extracted from a completion).
            tests (`Sequence[str]`):
                Test snippets, typically `assert` statements that call the program's functions.
            timeout (`float`):
                Wall-clock limit in seconds for each test (program definition included).

        Returns:
            `list[TestResult]`: One result per test, in order.
        """

    @abstractmethod
    async def arun(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        """Asynchronous version of [`~CodeSandbox.run`]."""

    async def arun_batch(
        self, jobs: Sequence[tuple[str, Sequence[str]]], timeout: float
    ) -> list[list[TestResult] | SandboxInfraError]:
        """
        Run several `(code, tests)` jobs concurrently.

        Returns:
            `list[list[TestResult] | SandboxInfraError]`: Per job, its results or the infrastructure error that
            prevented running it.
        """
        outputs = await asyncio.gather(
            *(self.arun(code, tests, timeout) for code, tests in jobs), return_exceptions=True
        )
        for output in outputs:
            if isinstance(output, BaseException) and not isinstance(output, SandboxInfraError):
                raise output
        return list(outputs)

    def run_batch(
        self, jobs: Sequence[tuple[str, Sequence[str]]], timeout: float
    ) -> list[list[TestResult] | SandboxInfraError]:
        """Synchronous version of [`~CodeSandbox.arun_batch`]."""
        return run_coroutine_sync(self.arun_batch(jobs, timeout))

    def close(self) -> None:  # noqa: B027 (optional hook: backends without resources need not override it)
        """Release the backend's resources (worker pool, remote sessions)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def run_coroutine_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """
    Run `coroutine` to completion from synchronous code, also when the calling thread already runs an event loop
    (e.g. inside a notebook), where `asyncio.run` would refuse.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
