"""Interface shared by the code-execution backends."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping, Sequence
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


@dataclass
class ScriptResult:
    """
    Outcome of one standalone script run with [`CodeSandbox.run_script`].

    Args:
        exit_code (`int`, *optional*):
            Exit status of the script (`0` on success, `1` for an uncaught exception, minus the signal number when a
            signal killed it), or `None` when it was stopped at the timeout.
        stdout (`bytes`):
            What the script wrote to its standard output (the last `max_output_bytes` bytes).
        stderr (`bytes`):
            What it wrote to its standard error, tracebacks included (the last `max_output_bytes` bytes).
        timed_out (`bool`, *optional*, defaults to `False`):
            Whether the script ran past its timeout and was killed.
        duration (`float`, *optional*, defaults to `0.0`):
            Wall time in seconds of the script itself (interpreter start-up of the sandbox excluded).
        stdout_truncated (`bool`, *optional*, defaults to `False`):
            Whether the beginning of `stdout` was dropped to respect `max_output_bytes`.
        stderr_truncated (`bool`, *optional*, defaults to `False`):
            Same for `stderr`.
    """

    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    duration: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        """Whether the script ran to completion with exit status 0."""
        return self.exit_code == 0 and not self.timed_out

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace")


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

    def run_script(
        self,
        code: str,
        timeout: float,
        allow_site_packages: bool = True,
        env: Mapping[str, str] | None = None,
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ScriptResult:
        """
        Run `code` as a standalone script (`__name__ == "__main__"`) and capture its output.

        Unlike [`~CodeSandbox.run`] this returns what the program printed, for programs whose product is their
        output (e.g. a rendered plot). Backends that cannot do this raise `NotImplementedError`.

        Args:
            code (`str`):
                The script.
            timeout (`float`):
                Wall-clock limit in seconds.
            allow_site_packages (`bool`, *optional*, defaults to `True`):
                Whether the script may import the third-party packages installed for the sandbox's interpreter
                (read-only), rather than the standard library only.
            env (`Mapping[str, str]`, *optional*):
                Extra environment variables for the script.
            max_output_bytes (`int`, *optional*, defaults to `16 MiB`):
                How much of each of stdout and stderr is kept (the end of the stream).

        Returns:
            [`ScriptResult`]: Exit status, output and whether the timeout fired. Never raises for what the script
            does; raises [`SandboxInfraError`] when the sandbox itself failed.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot run standalone scripts; use LocalSandbox")

    async def arun_script(
        self,
        code: str,
        timeout: float,
        allow_site_packages: bool = True,
        env: Mapping[str, str] | None = None,
        max_output_bytes: int = 16 * 1024 * 1024,
    ) -> ScriptResult:
        """Asynchronous version of [`~CodeSandbox.run_script`]."""
        return await asyncio.to_thread(self.run_script, code, timeout, allow_site_packages, env, max_output_bytes)

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
