"""
Trusted verdicts (`trl_ext.sandbox.checks`): for single-`assert` tests the sandbox evaluates only the calls into the
program and the comparison runs outside its process. Honest programs get exactly the verdicts of the plain in-process
run; the reward hacks that beat the in-process run (an object equal to everything, an `int` subclass, a forged pass
through the runner's frames, reading the expected value from memory) fail, next to honest programs whose results do
not change.
"""

from __future__ import annotations

import time

import pytest

from trl_ext.sandbox import LocalSandbox
from trl_ext.sandbox.checks import plan_test

# ---------------------------------------------------------------------------------------------------------------------
# Splitting a test into probes and skeleton
# ---------------------------------------------------------------------------------------------------------------------
SPLITS = {
    "assert add(1, 2) == 3": ["add(1, 2)"],
    "assert abs(area(2) - 12.566) < 1e-3": ["area(2)"],
    "assert math.isclose(f(0.1), 0.2, rel_tol=1e-9)": ["f(0.1)"],
    "assert Solution().twoSum([2, 7, 11], 9) == [0, 1]": ["Solution().twoSum([2, 7, 11], 9)"],
    "assert sorted(f([3, 1])) == [1, 3]": ["sorted(f([3, 1]))"],
    "assert list(gen(3)) == [0, 1, 2]": ["list(gen(3))"],
    "assert not is_prime(4)": ["is_prime(4)"],
    "assert f(1) == 2 and 1 < 2": ["f(1)"],
    "assert f(x=1) is None": ["f(x=1)"],
    "assert f('a') == {'a': (1, 2.5)}, 'message'": ["f('a')"],
    "assert round(f(2), 2) == 1.41": ["f(2)"],
    "assert len(f()) == 3": ["len(f())"],
}


@pytest.mark.parametrize("test", list(SPLITS))
def test_probes_hold_the_program_calls_and_never_the_expected_values(test):
    plan = plan_test(test)
    assert plan is not None and plan.probes == SPLITS[test]
    for probe in plan.probes:
        for expected in ("== 3", "12.566", "0.2", "[0, 1]", "[1, 3]", "[0, 1, 2]", "1.41", "(1, 2.5)", "message"):
            assert expected not in probe


@pytest.mark.parametrize(
    "test",
    [
        "x = f(1)\nassert x == 2",  # two statements
        "assert f(1) == 2\nassert f(2) == 3",
        "check(candidate)",  # not an assert
        "assert True",  # nothing to probe
        "assert f(1) == 'abc'.upper()",  # an attribute outside math in the skeleton
        "assert f(1) == [i for i in range(3)]",  # a comprehension in the skeleton
        "assert (lambda: f(1))() == 2",
        # Calls that `and` / `or` / `if-else` may skip in-process (e.g. when they would raise).
        "assert f(1) == 2 and g(2) != 3",
        "assert not ok() or f(1) == 2",
        "assert (f(1) if ok() else 0) == 2",
        "def (",  # not Python
    ],
)
def test_other_shapes_keep_the_in_process_run(test):
    assert plan_test(test) is None


# ---------------------------------------------------------------------------------------------------------------------
# Honest programs: trusted verdicts equal the in-process ones (the slow, obviously right version)
# ---------------------------------------------------------------------------------------------------------------------
HONEST = """
import math
from collections import OrderedDict, deque, Counter, namedtuple
from fractions import Fraction
Point = namedtuple("Point", "x y")
def add(a, b): return a + b
def half(x): return x / 2
def nan(): return float("nan")
def pair(): return (1, 2)
def pairs(): return [(1, "a"), (2, "b")]
def od(): return OrderedDict([("a", 1), ("b", 2)])
def counter(s): return Counter(s)
def gen(n):
    for i in range(n):
        yield i
def is_prime(n): return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
def big(): return 2 ** 200
def text(): return "héllo ✓"
def raw(): return b"\\x00\\xff"
def frac(): return Fraction(1, 3)
def dq(): return deque([1, 2])
def point(): return Point(1, 2)
def nested(): return {"k": [1, {2, 3}, (4.5, None, True)], (1, 2): frozenset({"x"})}
def boom(): raise ValueError("no")
def truthy(): return [1]
class Solution:
    def twoSum(self, nums, target):
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [seen[target - n], i]
            seen[n] = i
    def __repr__(self): return "Solution()"
"""
HONEST_TESTS = [
    "assert add(1, 2) == 3", "assert add(1, 2) == 4", "assert add(1, 2) != 4", "assert add(0.1, 0.2) == 0.3",
    "assert abs(add(0.1, 0.2) - 0.3) < 1e-9", "assert math.isclose(half(1), 0.5)", "assert half(2) == 1",
    "assert nan() == nan()", "assert nan() != nan()", "assert pair() == (1, 2)", "assert pair() == [1, 2]",
    "assert pairs() == [(1, 'a'), (2, 'b')]", "assert od() == {'b': 2, 'a': 1}", "assert od() == OrderedDict(b=2, a=1)",
    "assert counter('aab') == {'a': 2, 'b': 1}", "assert list(gen(3)) == [0, 1, 2]", "assert gen(3) == [0, 1, 2]",
    "assert is_prime(7)", "assert not is_prime(8)", "assert is_prime(8) is False", "assert is_prime(7) == 1",
    "assert big() == 2 ** 200", "assert big() > 10 ** 60", "assert text() == 'héllo ✓'", "assert raw() == b'\\x00\\xff'",
    "assert frac() == Fraction(1, 3)", "assert frac() == 1 / 3", "assert dq() == deque([1, 2])", "assert dq() == [1, 2]",
    "assert point() == (1, 2)", "assert point().x == 1", "assert nested() == {'k': [1, {2, 3}, (4.5, None, True)], (1, 2): frozenset({'x'})}",
    "assert boom() == 1", "assert truthy()", "assert Solution().twoSum([2, 7, 11, 15], 9) == [0, 1]",
    "assert Solution().twoSum([3, 3], 6) == [1, 0]", "assert sorted(add([3], [1])) == [1, 3]", "assert len(pairs()) == 2",
    "assert round(half(3), 1) == 1.5", "assert max(pair()) == 2", "assert str(Solution()) == 'Solution()'",
    "assert add('a', 'b') in ('ab', 'ba')", "assert add(1, 2) == 3, 'with a message'", "assert missing(1) == 2",
]  # fmt: skip


def test_honest_programs_get_the_in_process_verdicts():
    assert sum(plan_test(test) is not None for test in HONEST_TESTS) == len(HONEST_TESTS)
    with LocalSandbox(max_workers=2) as trusted, LocalSandbox(max_workers=2, trusted_verdicts=False) as plain:
        expected = [r.passed for r in plain.run(HONEST, HONEST_TESTS, 5.0)]
        got = trusted.run(HONEST, HONEST_TESTS, 5.0)
    assert [r.passed for r in got] == expected, [
        (test, r.detail) for test, r, e in zip(HONEST_TESTS, got, expected) if r.passed != e
    ]
    assert 20 < sum(expected) < len(expected)  # both verdicts occur
    # The in-process failure messages carry over: a raised exception is named, a false assert is an AssertionError.
    by_test = dict(zip(HONEST_TESTS, got))
    assert by_test["assert boom() == 1"].detail.startswith("ValueError")
    assert by_test["assert add(1, 2) == 4"].detail.startswith("AssertionError")
    assert by_test["assert missing(1) == 2"].detail.startswith("NameError")


# ---------------------------------------------------------------------------------------------------------------------
# Hostile programs next to honest ones
# ---------------------------------------------------------------------------------------------------------------------
HACKS = {
    "always_equal": "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "    def __bool__(self): return True\n    def __lt__(self, o): return True\n"
    "    def __sub__(self, o): return 0\n    __rsub__ = __sub__\n    def __abs__(self): return 0\n"
    "def add(a, b): return A()\n",
    "int_subclass": "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
    "def add(a, b): return I(0)\n",
    "str_subclass": "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\n"
    "def add(a, b): return S('')\n",
    "list_subclass": "class L(list):\n    def __eq__(self, o): return True\n    def __iter__(self): return iter([3])\n"
    "def add(a, b): return L()\n",
    "class_spoof": "class F:\n    __class__ = property(lambda self: int)\n    def __eq__(self, o): return True\n"
    "def add(a, b): return F()\n",
    "frame_forge": "import sys, os\ndef add(a, b):\n    f = sys._getframe(1)\n    while f is not None:\n"
    "        if 'nonce' in f.f_locals and 'write_fd' in f.f_locals:\n"
    "            os.write(f.f_locals['write_fd'], ('pass ' + f.f_locals['nonce']).encode())\n"
    "            os._exit(0)\n        f = f.f_back\n    return 0\n",
    "values_forge": "import sys, os, json\ndef add(a, b):\n    f = sys._getframe(1)\n    while f is not None:\n"
    "        if 'nonce' in f.f_locals and 'write_fd' in f.f_locals:\n"
    "            os.write(f.f_locals['write_fd'], ('values ' + f.f_locals['nonce'] + ' [{\"t\": \"opaque\"}]').encode())\n"
    "            os._exit(0)\n        f = f.f_back\n    return 0\n",
    "memory_scan": "import gc\ndef add(a, b):\n    wanted = f'assert add({a}, {b}) == '\n"
    "    for o in gc.get_objects():\n"
    "        for v in (o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()):\n"
    "            if isinstance(v, str) and v.startswith(wanted):\n"
    "                return int(v[len(wanted):])\n    return 0\n",
    "patched_builtins": "import builtins, math\nbuiltins.abs = lambda x: 0\nmath.isclose = lambda *a, **k: True\n"
    "def add(a, b): return 0\n",
    "exit_zero": "import os\ndef add(a, b): os._exit(0)\n",
    "huge_value": "def add(a, b): return [[0] * 1000 for _ in range(1000)]\n",
    "deep_value": "def add(a, b):\n    x = []\n    for _ in range(5000):\n        x = [x]\n    return x\n",
}
TESTS = [
    "assert add(1, 2) == 3",
    "assert add(20, 22) == 42",
    "assert abs(add(1, 2) - 3) < 1e-9",
    "assert math.isclose(add(1, 2), 3)",
]
HONEST_ADD = "def add(a, b):\n    return a + b\n"


def test_reward_hacks_fail_and_honest_neighbours_keep_their_results():
    jobs = []
    for code in HACKS.values():
        jobs += [(HONEST_ADD, TESTS), (code, TESTS)]
    jobs.append((HONEST_ADD, TESTS))
    start = time.monotonic()
    with LocalSandbox(max_workers=2) as sandbox:
        outcomes = sandbox.run_batch(jobs, timeout=5.0)
    elapsed = time.monotonic() - start
    honest = outcomes[0::2]
    assert all(all(r.passed for r in results) for results in honest)
    for name, results in zip(HACKS, outcomes[1::2]):
        assert not any(r.passed for r in results), (name, [r.detail for r in results])
    assert elapsed < 90, elapsed


def test_the_hacks_do_beat_the_in_process_run():
    """The reason for trusted verdicts: with them off, these programs pass tests they should fail."""
    with LocalSandbox(max_workers=2, trusted_verdicts=False) as sandbox:
        for name in ("always_equal", "int_subclass", "frame_forge", "memory_scan"):
            results = sandbox.run(HACKS[name], TESTS[:2], 5.0)
            assert all(r.passed for r in results), (name, [r.detail for r in results])
