"""
Code rewards for GRPO: format (DiffuCoder's rule) and test pass rate in a sandbox.

All callables follow TRL's reward signature, `f(prompts, completions, completion_ids=None, **kwargs)`, and can be
passed to `GRPOTrainer(reward_funcs=...)` as they are.
"""

from __future__ import annotations

import ast
import atexit
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..sandbox.base import INFRA_FAILURE_KINDS, CodeSandbox, SandboxInfraError, TestResult

logger = logging.getLogger(__name__)

FENCE = "```"
TESTS_COLUMNS = ("test_cases", "tests")

_default_sandbox: CodeSandbox | None = None
_default_sandbox_lock = threading.Lock()


def get_default_sandbox() -> CodeSandbox:
    """Return the process-wide [`~trl_ext.sandbox.LocalSandbox`], created on first use with a pool sized to the cores."""
    global _default_sandbox
    with _default_sandbox_lock:
        if _default_sandbox is None:
            from ..sandbox.local import LocalSandbox

            _default_sandbox = LocalSandbox()
            atexit.register(_default_sandbox.close)
        return _default_sandbox


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """Text of a completion, whether standard (`str`) or conversational (list of messages; the last one is used)."""
    if isinstance(completion, str):
        return completion
    if not completion:
        return ""
    content = completion[-1].get("content", "")
    if isinstance(content, list):  # multimodal content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def extract_final_code_block(text: str, language: str = "python") -> str | None:
    """
    Return the code of the completion if it follows DiffuCoder's format, `None` otherwise.

    The format is: exactly one fenced block, opened with ```` ```{language} ```` and a newline, and nothing but
    whitespace after its closing fence.

    Args:
        text (`str`):
            Completion text.
        language (`str`, *optional*, defaults to `"python"`):
            Language tag expected after the opening fence.

    Returns:
        `str` or `None`: The code inside the block.
    """
    if text.count(FENCE) != 2:
        return None
    start = text.index(FENCE)
    end = text.index(FENCE, start + len(FENCE))
    header, newline, body = text[start + len(FENCE) : end].partition("\n")
    if not newline or header.strip() != language or text[end + len(FENCE) :].strip():
        return None
    return body


def extract_code(text: str, language: str = "python") -> str:
    """
    Lenient code extraction, used when the format is not required: the last ```` ```{language} ```` block (even if
    unclosed), else the last fenced block of any language, else the whole text.
    """
    for opener in (f"{FENCE}{language}\n", FENCE):
        position = text.rfind(opener)
        if position != -1:
            body = text[position + len(opener) :]
            if opener == FENCE:
                body = body.partition("\n")[2]
            return body.split(FENCE, 1)[0]
    return text


def _format_score(text: str, language: str) -> float:
    code = extract_final_code_block(text, language)
    if code is None:
        return 0.0
    if language != "python":  # no parser at hand: a well-formed block is all we can check
        return 1.0
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return 0.5
    return 1.0


def make_code_format_reward(language: str = "python") -> Callable[..., list[float]]:
    """
    Build DiffuCoder's format reward: 1.0 when the completion ends with exactly one fenced ```` ```{language} ````
    block that parses, 0.5 when it does not parse (Python only, via `ast.parse`), 0.0 when the format is wrong
    (missing fence, several blocks, text after the block).

    Args:
        language (`str`, *optional*, defaults to `"python"`):
            Language tag of the fenced block.

    Returns:
        `Callable`: Reward function named `code_format_reward` (or `code_format_reward_{language}`).
    """

    def code_format_reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
        return [_format_score(completion_text(c), language) for c in completions]

    code_format_reward.__name__ = code_format_reward.__qualname__ = (
        "code_format_reward" if language == "python" else f"code_format_reward_{language}"
    )
    return code_format_reward


class _PassRateScorer:
    """Shared logic of the sync and async pass-rate rewards (job preparation, scoring, failure accounting)."""

    def __init__(self, name, sandbox, timeout, require_format, language, all_pass, tests_column):
        self.name = name
        self._sandbox = sandbox
        self.timeout = timeout
        self.require_format = require_format
        self.language = language
        self.all_pass = all_pass
        self.tests_column = tests_column
        self.counters: Counter[str] = Counter()

    @property
    def sandbox(self) -> CodeSandbox:
        return self._sandbox if self._sandbox is not None else get_default_sandbox()

    def _tests(self, kwargs: dict[str, Any]) -> list[Sequence[str] | None]:
        columns = (self.tests_column,) if self.tests_column else TESTS_COLUMNS
        for column in columns:
            if kwargs.get(column) is not None:
                return list(kwargs[column])
        raise KeyError(f"{self.name} needs a dataset column with the test cases, one of {columns}.")

    def prepare(self, completions, kwargs) -> tuple[list[float | None], list[tuple[int, str, list[str]]]]:
        """Rewards known without running anything, and the `(row, code, tests)` jobs to run."""
        tests_per_row = self._tests(kwargs)
        rewards: list[float | None] = [None] * len(completions)
        jobs = []
        for row, (completion, tests) in enumerate(zip(completions, tests_per_row)):
            if isinstance(tests, str):
                tests = [tests]
            if not tests:
                self.counters["no_tests"] += 1
                continue
            text = completion_text(completion)
            code = extract_final_code_block(text, self.language)
            if code is None:
                if self.require_format:
                    rewards[row] = 0.0
                    continue
                code = extract_code(text, self.language)
            jobs.append((row, code, list(tests)))
        return rewards, jobs

    def finish(self, rewards, jobs, outputs, kwargs) -> list[float | None]:
        batch_failures: Counter[str] = Counter()
        test_timeouts = 0
        for (row, _, _), output in zip(jobs, outputs):
            if isinstance(output, SandboxInfraError):
                batch_failures[output.kind] += 1
                continue
            test_timeouts += sum(result.status == "timeout" for result in output)
            rewards[row] = self._score(output)
        self.counters.update(batch_failures)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for kind in INFRA_FAILURE_KINDS:
                log_metric(f"code_reward/infra_failures/{kind}", float(batch_failures.get(kind, 0)))
            log_metric("code_reward/test_timeouts", float(test_timeouts))
        n_failed = sum(batch_failures.values())
        if jobs and n_failed == len(jobs):
            logger.warning(
                f"{self.name}: the sandbox failed for all {len(jobs)} programs of this batch ({dict(batch_failures)}); "
                "their rewards are None (excluded), not 0. Check the sandbox backend."
            )
        elif n_failed:
            logger.info(f"{self.name}: {n_failed}/{len(jobs)} programs not scored ({dict(batch_failures)}).")
        return rewards

    def _score(self, results: list[TestResult]) -> float:
        passed = sum(result.passed for result in results)
        if self.all_pass:
            return float(passed == len(results))
        return passed / len(results)


def make_code_pass_rate_reward(
    sandbox: CodeSandbox | None = None,
    timeout: float = 3.0,
    require_format: bool = True,
    language: str = "python",
    all_pass: bool = False,
    asynchronous: bool = False,
    tests_column: str | None = None,
    name: str | None = None,
) -> Callable[..., Any]:
    """
    Build a reward that runs each completion's code against its test cases in a sandbox.

    The test cases come from a dataset column (`test_cases`, else `tests`): per row, a list of standalone snippets,
    typically `assert` statements calling the solution's function. Each test runs in isolation under its own
    timeout; a test that times out fails alone.

    Rewards: the fraction of passed tests (or 1.0/0.0 when `all_pass=True`); 0.0 without running anything when the
    format is required and wrong; `None` (sample excluded by TRL) when the sandbox infrastructure failed or the row
    has no tests. Infrastructure failures are counted per kind, logged through TRL's `log_metric` as
    `code_reward/infra_failures/<kind>`, kept in the callable's `counters` attribute, and a warning fires when a
    whole batch fails.

    Args:
        sandbox ([`~trl_ext.sandbox.CodeSandbox`], *optional*):
            Execution backend. Defaults to a shared [`~trl_ext.sandbox.LocalSandbox`] created on first use.
        timeout (`float`, *optional*, defaults to `3.0`):
            Per-test wall-clock limit in seconds.
        require_format (`bool`, *optional*, defaults to `True`):
            Run the code only when the completion follows the format of [`make_code_format_reward`]; otherwise,
            extract the code leniently (last fenced block, else the whole text).
        language (`str`, *optional*, defaults to `"python"`):
            Language tag of the fenced block.
        all_pass (`bool`, *optional*, defaults to `False`):
            Return 1.0 only when every test passes (binary reward) instead of the pass fraction.
        asynchronous (`bool`, *optional*, defaults to `False`):
            Return an `async def` function, which TRL awaits concurrently with the other async rewards.
        tests_column (`str`, *optional*):
            Dataset column with the tests. Defaults to the first present of `test_cases` and `tests`.
        name (`str`, *optional*):
            `__name__` of the returned callable (TRL logs rewards under it). Defaults to `code_pass_rate_reward` or
            `code_all_pass_reward`, prefixed with `async_` for the async version.

    Returns:
        `Callable`: The reward function.
    """
    if name is None:
        name = ("async_" if asynchronous else "") + ("code_all_pass_reward" if all_pass else "code_pass_rate_reward")
    scorer = _PassRateScorer(name, sandbox, timeout, require_format, language, all_pass, tests_column)

    if asynchronous:

        async def reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
            rewards, jobs = scorer.prepare(completions, kwargs)
            outputs = await scorer.sandbox.arun_batch([(code, tests) for _, code, tests in jobs], scorer.timeout)
            return scorer.finish(rewards, jobs, outputs, kwargs)

    else:

        def reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
            rewards, jobs = scorer.prepare(completions, kwargs)
            outputs = scorer.sandbox.run_batch([(code, tests) for _, code, tests in jobs], scorer.timeout)
            return scorer.finish(rewards, jobs, outputs, kwargs)

    reward.__name__ = reward.__qualname__ = name
    reward.counters = scorer.counters
    # Checked by the trainers against the dataset before any model loads: one of these columns, a list per row.
    reward.required_columns = ((tests_column,) if tests_column else TESTS_COLUMNS,)
    reward.list_columns = reward.required_columns[0]
    return reward


code_format_reward = make_code_format_reward()
code_pass_rate_reward = make_code_pass_rate_reward()
code_all_pass_reward = make_code_pass_rate_reward(all_pass=True)
async_code_pass_rate_reward = make_code_pass_rate_reward(asynchronous=True)
async_code_all_pass_reward = make_code_pass_rate_reward(all_pass=True, asynchronous=True)

__all__ = [
    "async_code_all_pass_reward",
    "async_code_pass_rate_reward",
    "code_all_pass_reward",
    "code_format_reward",
    "code_pass_rate_reward",
    "completion_text",
    "extract_code",
    "extract_final_code_block",
    "get_default_sandbox",
    "make_code_format_reward",
    "make_code_pass_rate_reward",
]
