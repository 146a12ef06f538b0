"""
Test harness that runs *inside* the sandbox, as the prefix of every test snippet the code evaluator sends.

It only uses the standard library (the sandbox runs `python -I -S`) and never touches the host: the candidate program
arrives as a string, the inputs and expected outputs as base64 pickles. Pickles only ever travel host -> sandbox (the
host pickles the inputs; the expected outputs are pickled by the canonical solution inside a sandbox and passed on
opaque), so the host never unpickles anything a program produced.

Failures raise one of the exception classes below, whose name and message (`"input 3 of 120: ..."`) the sandbox
reports back; the evaluator reads the failure kind and the number of inputs passed from them.
"""

HARNESS_SOURCE = r'''
import base64 as _h_base64
import copy as _h_copy
import math as _h_math
import pickle as _h_pickle
import signal as _h_signal
import time as _h_time


class WrongOutput(AssertionError):
    pass


class InputTimeout(Exception):
    pass


class CandidateError(Exception):
    pass


def _h_alarm(signum, frame):
    raise InputTimeout("time limit")


def _h_load(source):
    namespace = {}
    exec(compile(source, "<solution>", "exec"), namespace)
    return namespace


def _h_entry(namespace, entry_point):
    function = namespace.get(entry_point)
    if not callable(function):
        raise NameError(f"the solution does not define {entry_point}()")
    return function


def _h_is_floats(value):
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(item, float) for item in value)
    return False


def _h_close(out, expected, atol, rtol=1e-07):
    """numpy.allclose(out, expected, rtol, atol) for numbers and (nested) lists/tuples of numbers."""
    if isinstance(expected, (list, tuple)):
        if not isinstance(out, (list, tuple)) or len(out) != len(expected):
            return False
        return all(_h_close(o, e, atol, rtol) for o, e in zip(out, expected))
    numbers = (int, float, bool)
    if not isinstance(out, numbers) or not isinstance(expected, numbers):
        return False
    if _h_math.isinf(expected) or _h_math.isinf(out):
        return out == expected
    return abs(out - expected) <= atol + rtol * abs(expected)


def _h_poly(xs, x):
    return sum(coefficient * _h_math.pow(x, i) for i, coefficient in enumerate(xs))


def _h_surface_area(base_edge, height):
    slant = _h_math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 2 * base_edge * slant)


def _h_digit_distance(a, b):
    a, b = str(a), str(b)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _h_matches(out, expected, inputs, atol, oracle):
    """EvalPlus's comparison: exact match, its special oracles, else allclose for floats (atol >= 1e-6)."""
    if oracle == "find_zero":
        return abs(_h_poly(*inputs, out)) <= atol
    exact = bool(out == expected)
    if oracle == "any":
        exact = True
    elif oracle == "zero_ok":
        exact = exact or bool(out == 0)
    elif oracle == "surface_area":
        exact = exact or abs(out - _h_surface_area(*inputs)) <= atol
    elif oracle == "digit_distance":
        exact = exact or bool(out == _h_digit_distance(*inputs))
    elif oracle == "set_eq":
        exact = set(out) == set(expected)
    elif oracle == "not_none":
        exact = bool(out == expected) if isinstance(out, bool) else expected == (out is not None)
    if atol == 0 and _h_is_floats(expected):
        atol = 1e-6
    if not exact and atol != 0:
        return type(out) is type(expected) and _h_close(out, expected, atol)
    return exact


def check_inputs(source, entry_point, inputs_b64, expected_b64, limits, budget, atol, oracle):
    """Differential testing against the canonical outputs, stopping at the first failing input (EvalPlus's fast
    check). Each call runs under its own time limit and all calls together under `budget` seconds."""
    inputs = _h_pickle.loads(_h_base64.b64decode(inputs_b64))
    expected = _h_pickle.loads(_h_base64.b64decode(expected_b64))
    _h_signal.signal(_h_signal.SIGALRM, _h_alarm)
    deadline = _h_time.monotonic() + budget
    _h_signal.setitimer(_h_signal.ITIMER_REAL, budget)  # a program that never finishes defining itself
    try:
        function = _h_entry(_h_load(source), entry_point)
    except InputTimeout:
        raise InputTimeout(f"input 0 of {len(inputs)}: defining the solution exceeded {budget:.1f}s") from None
    finally:
        _h_signal.setitimer(_h_signal.ITIMER_REAL, 0)
    total = len(inputs)
    for index, (arguments, wanted, limit) in enumerate(zip(inputs, expected, limits)):
        remaining = deadline - _h_time.monotonic()
        if remaining <= 0:
            raise InputTimeout(f"input {index} of {total}: the problem's time budget of {budget:.1f}s is spent")
        limit = min(limit, remaining)
        kept = _h_copy.deepcopy(arguments)
        try:
            _h_signal.setitimer(_h_signal.ITIMER_REAL, limit)
            try:
                out = function(*arguments)
            finally:
                _h_signal.setitimer(_h_signal.ITIMER_REAL, 0)
        except InputTimeout:
            raise InputTimeout(f"input {index} of {total}: exceeded {limit:.2f}s") from None
        except BaseException as error:
            raise CandidateError(f"input {index} of {total}: {type(error).__name__}: {error}") from None
        try:
            ok = _h_matches(out, wanted, kept, atol, oracle)
        except BaseException as error:
            raise WrongOutput(f"input {index} of {total}: output not comparable ({type(error).__name__})") from None
        if not ok:
            raise WrongOutput(f"input {index} of {total}: expected {wanted!r:.80}, got {out!r:.80}")


def check_function(source, test, entry_point):
    """OpenAI HumanEval's test: the problem's `check(candidate)` function of assertions."""
    namespace = _h_load(source)
    function = _h_entry(namespace, entry_point)
    exec(compile(test, "<test>", "exec"), namespace)
    namespace["check"](function)
'''

# Run inside a sandbox by `run_script` to compute the canonical solution's outputs and times for each split: prints
# one JSON line (last line of stdout) with, per split, the outputs as an opaque base64 pickle and the times.
GROUND_TRUTH_SOURCE = r"""
import base64, copy, json, pickle, time

job = pickle.loads(base64.b64decode(JOB))
namespace = {}
exec(compile(job["program"], "<canonical>", "exec"), namespace)
function = namespace[job["entry_point"]]
result = {}
for split, inputs in job["splits"].items():
    outputs, times = [], []
    for arguments in inputs:
        arguments = copy.deepcopy(arguments)
        start = time.time()
        outputs.append(function(*arguments))
        times.append(time.time() - start)
    if job["not_none"]:
        outputs = [output is not None for output in outputs]
    result[split] = {"expected": base64.b64encode(pickle.dumps(outputs)).decode(), "times": times}
print()
print(json.dumps(result))
"""
