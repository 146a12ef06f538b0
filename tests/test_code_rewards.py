import asyncio
import inspect
import logging
import os
import time

import pytest
from trl.trainer.utils import get_callable_name, is_async_callable

from trl_ext.data import load_code_problems
from trl_ext.rewards import (
    async_code_all_pass_reward,
    async_code_pass_rate_reward,
    code_all_pass_reward,
    code_format_reward,
    code_pass_rate_reward,
    make_code_format_reward,
    make_code_pass_rate_reward,
)
from trl_ext.sandbox import CodeSandbox, LocalSandbox, SandboxInfraError, TestResult
from trl_ext.sandbox import local as local_module

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def fenced(code, language="python"):
    return f"Here is my solution.\n```{language}\n{code}\n```"


@pytest.fixture(scope="module")
def problems():
    return load_code_problems()


@pytest.fixture(scope="module")
def sandbox():
    box = LocalSandbox()
    yield box
    box.close()


# Format: the cases of DiffuCoder's format reward


@pytest.mark.parametrize(
    "completion, expected",
    [
        (fenced("def f(x):\n    return x"), 1.0),
        (fenced("def f(x):\n    return x") + "\n\n  \n", 1.0),  # trailing whitespace is allowed
        (fenced("def f(x) return x"), 0.5),  # syntax error
        ("def f(x):\n    return x", 0.0),  # missing fence
        (fenced("x = 1") + "\n" + fenced("y = 2"), 0.0),  # two blocks
        (fenced("x = 1") + "\nHope this helps!", 0.0),  # block not at the end
        ("```python\ndef f(x):\n    return x", 0.0),  # unclosed
        (fenced("x = 1", language=""), 0.0),  # no language tag
        (fenced("x = 1", language="javascript"), 0.0),  # wrong language
        ("```python def f(): pass```", 0.0),  # no newline after the tag
    ],
)
def test_code_format_reward(completion, expected):
    assert code_format_reward(prompts=["p"], completions=[completion]) == [expected]
    conversational = [{"role": "assistant", "content": completion}]
    assert code_format_reward(prompts=["p"], completions=[conversational]) == [expected]


def test_format_reward_factory_and_names():
    cpp = make_code_format_reward("cpp")
    assert cpp.__name__ == "code_format_reward_cpp"
    assert cpp(prompts=["p"], completions=[fenced("int main() {}", "cpp")]) == [1.0]
    assert cpp(prompts=["p"], completions=[fenced("int main() {}")]) == [0.0]
    names = {
        code_format_reward: "code_format_reward",
        code_pass_rate_reward: "code_pass_rate_reward",
        code_all_pass_reward: "code_all_pass_reward",
        async_code_pass_rate_reward: "async_code_pass_rate_reward",
        async_code_all_pass_reward: "async_code_all_pass_reward",
    }
    for func, name in names.items():
        assert get_callable_name(func) == name
    assert is_async_callable(async_code_pass_rate_reward) and inspect.iscoroutinefunction(async_code_all_pass_reward)
    assert not is_async_callable(code_pass_rate_reward)


# Pass rate on real problems


def _mutate(problem):
    # A plausible wrong answer: the reference solution, then a redefinition returning the first argument.
    return problem["reference_solution"] + f"\n\ndef {problem['entry_point']}(*args, **kwargs):\n    return args[0]\n"


def test_reference_solutions_score_one_and_mutations_less(problems, sandbox):
    reward = make_code_pass_rate_reward(sandbox=sandbox)
    completions = [[{"role": "assistant", "content": fenced(p["reference_solution"])}] for p in problems]
    metrics = {}
    scores = reward(
        prompts=problems["prompt"],
        completions=completions,
        test_cases=problems["test_cases"],
        log_metric=metrics.__setitem__,
        trainer_state=None,
        log_extra=lambda *args: None,
    )
    assert scores == [1.0] * len(problems)
    assert metrics["code_reward/infra_failures/sandbox_start"] == 0
    assert metrics["code_reward/test_timeouts"] == 0

    mutated = [fenced(_mutate(p)) for p in problems]
    mutated_scores = reward(prompts=problems["prompt"], completions=mutated, test_cases=problems["test_cases"])
    assert all(score < 1.0 for score in mutated_scores)
    all_pass = make_code_pass_rate_reward(sandbox=sandbox, all_pass=True)
    assert all_pass(prompts=problems["prompt"], completions=mutated, test_cases=problems["test_cases"]) == [0.0] * 20


def test_load_code_problems(problems):
    assert len(problems) == 20
    row = problems[0]
    assert row["prompt"][0]["role"] == "user" and "```python" in row["prompt"][0]["content"]
    assert all(test.startswith("assert ") and "candidate" not in test for test in row["test_cases"])
    assert load_code_problems(system_prompt="Be brief.")[0]["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_timeout_fails_only_that_test(sandbox):
    reward = make_code_pass_rate_reward(sandbox=sandbox, timeout=0.5)
    code = "def f(x):\n    if x < 0:\n        while True:\n            pass\n    return x"
    tests = ["assert f(1) == 1", "assert f(-1) == -1", "assert f(2) == 2", "assert f(3) == 4"]
    metrics = {}
    start = time.monotonic()
    assert reward(prompts=["p"], completions=[fenced(code)], tests=[tests], log_metric=metrics.__setitem__) == [0.5]
    assert time.monotonic() - start < 0.5 + 2
    assert metrics["code_reward/test_timeouts"] == 1


def test_format_gate_and_lenient_extraction(sandbox):
    tests = [["assert f() == 1"]] * 3
    completions = ["def f():\n    return 1", fenced("def f():\n    return 1") + "\nDone.", fenced("def f(:")]
    strict = make_code_pass_rate_reward(sandbox=sandbox)
    assert strict(prompts=["p"] * 3, completions=completions, test_cases=tests) == [0.0, 0.0, 0.0]
    lenient = make_code_pass_rate_reward(sandbox=sandbox, require_format=False)
    assert lenient(prompts=["p"] * 3, completions=completions, test_cases=tests) == [1.0, 1.0, 0.0]


def test_async_rewards_match_sync(problems, sandbox):
    reward = make_code_pass_rate_reward(sandbox=sandbox, asynchronous=True)
    completions = [fenced(p["reference_solution"]) for p in problems.select(range(4))]
    completions.append(fenced("def nothing():\n    pass"))
    tests = problems["test_cases"][:4] + [problems["test_cases"][4]]
    scores = asyncio.run(reward(prompts=["p"] * 5, completions=completions, test_cases=tests))
    assert scores == [1.0, 1.0, 1.0, 1.0, 0.0]


class _BrokenSandbox(CodeSandbox):
    def __init__(self, kind):
        self.kind = kind

    def run(self, code, tests, timeout):
        raise SandboxInfraError(self.kind, "simulated outage")

    async def arun(self, code, tests, timeout):
        raise SandboxInfraError(self.kind, "simulated outage")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_infra_failure_is_none_counted_and_warned(asynchronous, caplog):
    reward = make_code_pass_rate_reward(sandbox=_BrokenSandbox("sandbox_start"), asynchronous=asynchronous)
    metrics = {}
    kwargs = {"prompts": ["p"] * 3, "completions": [fenced("x = 1")] * 2 + ["no code"], "test_cases": [["pass"]] * 3}
    with caplog.at_level(logging.WARNING, logger="trl_ext.rewards.code"):
        output = reward(**kwargs, log_metric=metrics.__setitem__)
        scores = asyncio.run(output) if asynchronous else output
    assert scores == [None, None, 0.0]  # the unformatted completion never reached the sandbox
    assert metrics["code_reward/infra_failures/sandbox_start"] == 2
    assert metrics["code_reward/infra_failures/pool_overloaded"] == 0
    assert reward.counters["sandbox_start"] == 2
    assert "failed for all 2 programs" in caplog.text
    # Outside a trainer there is no log_metric: still works.
    output = reward(**kwargs)
    assert (asyncio.run(output) if asynchronous else output) == [None, None, 0.0]


def test_pool_overload_is_an_infra_failure():
    with LocalSandbox(max_workers=1, max_queue=0, queue_timeout=0.05) as box:
        reward = make_code_pass_rate_reward(sandbox=box, timeout=1.0)
        metrics = {}
        scores = reward(
            prompts=["p"] * 2,
            completions=[fenced("import time\ntime.sleep(0.5)")] * 2,
            test_cases=[["pass"]] * 2,
            log_metric=metrics.__setitem__,
        )
    assert scores == [1.0, None]
    assert metrics["code_reward/infra_failures/pool_overloaded"] == 1


def test_sandbox_start_failure(monkeypatch):
    with LocalSandbox(python_executable="/nonexistent/python", use_bwrap=False) as box:
        with pytest.raises(SandboxInfraError) as error:
            box.run("x = 1", ["pass"], 1.0)
    assert error.value.kind == "sandbox_start"


def test_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(local_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(local_module, "_fallback_warned", False)
    with pytest.warns(UserWarning, match="bubblewrap is unavailable"):
        LocalSandbox(max_workers=1).close()
    with LocalSandbox(max_workers=1) as box:  # no second warning
        assert box.isolation == "rlimits"
        assert box.run("def f():\n    return 2", ["assert f() == 2"], 1.0)[0] == TestResult(
            passed=True, status="passed", detail="", duration=pytest.approx(0.0, abs=1.0)
        )


def test_rows_without_tests_are_excluded(sandbox):
    reward = make_code_pass_rate_reward(sandbox=sandbox)
    assert reward(prompts=["p"], completions=[fenced("x = 1")], test_cases=[[]]) == [None]
    with pytest.raises(KeyError, match="test_cases"):
        reward(prompts=["p"], completions=[fenced("x = 1")])
