"""
Trusted test verdicts: the comparison of an `assert` runs outside the process that ran the untrusted program.

A test run the plain way (`exec(program); exec(test)` in one process, a pass reported by that process) trusts the
program with its own verdict. The program can return an object whose `__eq__` always says yes (`class A: __eq__ =
lambda s, o: True`), an `int` subclass that equals everything, or walk the interpreter's frames to the runner's
result channel and report a pass itself. RL policies find such holes: each turns a wrong program into a full reward.

For the tests that are one `assert` over calls into the program, which is most of them (`assert f(1, 2) == 3`,
`assert abs(f(x) - 0.5) < 1e-6`, `assert Solution().two_sum([2, 7], 9) == [0, 1]`, `assert not is_prime(4)`),
[`plan_test`] splits the assertion into *probes*, the sub-expressions that call into the program, and a *skeleton*,
the rest. The sandbox evaluates only the probes, in the program's process, and sends back their values as plain data
(built-in scalars and containers, copied through the built-in types' own methods, so overridden `__eq__`, `__iter__`
or `__class__` change nothing); anything else comes back as an opaque value that every comparison rejects. The
skeleton, which holds the expected values, is evaluated here, on those plain values: the program never sees what
it is compared with and never decides the verdict.

Tests of any other shape (several statements, helper definitions, comparisons that need the program's own objects)
keep the plain in-process run; [`plan_test`] returns `None` for them.

Example:

```python
>>> from trl_ext.sandbox.checks import plan_test
>>> plan = plan_test("assert abs(area(2) - 12.566) < 1e-3")
>>> plan.probes
['area(2)']
>>> plan.verdict([{"t": "float", "v": "12.566370614359172"}])
(True, '')
>>> plan.verdict([{"t": "opaque", "type": "AlwaysEqual"}])
(False, 'TypeError: a value of type AlwaysEqual (not plain data) cannot be compared')
>>> plan_test("x = f(1)\\nassert x == 2") is None  # two statements: run in-process as before
True
```
"""

from __future__ import annotations

import ast
import builtins
import collections
import decimal
import fractions
import functools
import math
from dataclasses import dataclass
from typing import Any

# Names the skeleton may use: the built-ins a test compares with, `math` and the stdlib containers tests build
# expected values from. Any other name belongs to the program (or to the test's own setup) and makes a probe.
_SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs all any bool bytes complex dict divmod enumerate float frozenset int isinstance len list map max min "
        "pow range reversed round set sorted str sum tuple type zip True False None"
    ).split()
}
_SAFE_GLOBALS = {
    "math": math,
    "deque": collections.deque,
    "OrderedDict": collections.OrderedDict,
    "Counter": collections.Counter,
    "defaultdict": collections.defaultdict,
    "Fraction": fractions.Fraction,
    "Decimal": decimal.Decimal,
}
_SAFE_NAMES = set(_SAFE_BUILTINS) | set(_SAFE_GLOBALS)
# Calls whose arguments may be probes while the call itself stays in the skeleton: they only read numbers, so they
# give the same answer on the plain copy. Conversions (`sorted`, `list`, `str`, `len`, ...) applied to a program's
# value go into the probe instead: they may need the program's own object (a generator, a `__str__`).
_SKELETON_CALLS = {"abs", "round", "min", "max", "divmod", "pow", "float", "int", "complex"}
_SKELETON_MATH = {"isclose", "fabs", "sqrt", "floor", "ceil", "trunc", "isnan", "isinf", "isfinite", "log", "exp"}
_MAX_PROBES = 16
_LOCAL_SCOPES = (
    ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr, ast.Await, ast.Yield,
    ast.YieldFrom,
)  # fmt: skip
_EXPRESSION_NODES = (
    ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Name, ast.Attribute, ast.UnaryOp,
    ast.BinOp, ast.BoolOp, ast.Compare, ast.Call, ast.keyword, ast.IfExp, ast.Subscript, ast.Slice, ast.Starred,
    ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip


class _Opaque:
    """A value the program returned that is not plain data: every comparison or use of it raises."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"a value of type {self.type_name} (not plain data) cannot be compared")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __iter__ = __contains__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __abs__ = __neg__ = __float__ = __int__ = __index__ = __getitem__ = __hash__ = __round__ = _refuse

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


def decode(node: Any) -> Any:
    """A probe value as encoded by the sandbox runner (tagged JSON), back to the plain Python value."""
    if not isinstance(node, dict):
        raise ValueError(f"malformed probe value {node!r}")
    tag = node.get("t")
    value = node.get("v")
    if tag == "none":
        return None
    if tag == "bool":
        return bool(value)
    if tag == "int":
        return int(value, 16)
    if tag == "float":
        return float(value)
    if tag == "complex":
        return complex(value)
    if tag == "str":
        return str(value)
    if tag == "bytes":
        return bytes.fromhex(value)
    if tag == "bytearray":
        return bytearray.fromhex(value)
    if tag == "fraction":
        return fractions.Fraction(value)
    if tag == "decimal":
        return decimal.Decimal(value)
    if tag in ("list", "tuple", "set", "frozenset", "deque"):
        items = [decode(item) for item in value]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "deque": collections.deque}[tag](
            items
        )
    if tag in ("dict", "ordereddict", "counter"):
        pairs = [(decode(k), decode(v)) for k, v in value]
        return {"dict": dict, "ordereddict": collections.OrderedDict, "counter": collections.Counter}[tag](dict(pairs))
    if tag == "opaque":
        return _Opaque(str(node.get("type", "object"))[:100])
    raise ValueError(f"unknown probe value tag {tag!r}")


@dataclass(frozen=True)  # shared between calls by plan_test's cache
class TestPlan:
    """
    How one `assert` test is checked with a trusted verdict: the probe expressions the sandbox evaluates in the
    program's namespace, and the skeleton evaluated here on their plain values.
    """

    __test__ = False  # not a pytest class

    source: str
    probes: list[str]
    skeleton: Any  # the compiled skeleton expression

    def verdict(self, encoded_values: list[Any]) -> tuple[bool, str]:
        """`(passed, detail)` for the encoded probe values the sandbox sent back."""
        if not isinstance(encoded_values, list) or len(encoded_values) != len(self.probes):
            return False, "the program's process sent back malformed probe values"
        try:
            values = {f"__probe_{i}": decode(v) for i, v in enumerate(encoded_values)}
        except (ValueError, TypeError, KeyError, decimal.InvalidOperation) as error:
            return False, f"malformed probe value: {error}"[:300]
        try:
            ok = eval(self.skeleton, {"__builtins__": _SAFE_BUILTINS, **_SAFE_GLOBALS}, values)  # noqa: S307 (trusted skeleton)
            if type(ok) is _Opaque:
                ok._refuse()
            passed = bool(ok)
        except Exception as error:  # the comparison itself failed: the test fails, as it would have in-process
            return False, f"{type(error).__name__}: {error}"[:300]
        return (True, "") if passed else (False, "AssertionError: ")


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _depends_on_program(node: ast.AST) -> bool:
    return bool(_names(node) - _SAFE_NAMES)


def _skeleton_safe(node: ast.AST, probe_names: set[str]) -> bool:
    for child in ast.walk(node):
        if not isinstance(child, _EXPRESSION_NODES):
            return False
        if isinstance(child, ast.Name) and child.id not in _SAFE_NAMES and child.id not in probe_names:
            return False
        if isinstance(child, ast.Attribute) and not (
            isinstance(child.value, ast.Name) and child.value.id == "math" and not child.attr.startswith("_")
        ):
            return False
    return True


class _Splitter(ast.NodeTransformer):
    def __init__(self):
        self.probes: list[ast.expr] = []

    def _probe(self, node: ast.expr) -> ast.Name:
        self.probes.append(node)
        return ast.copy_location(ast.Name(id=f"__probe_{len(self.probes) - 1}", ctx=ast.Load()), node)

    def generic_visit(self, node):  # any expression not handled below: a probe if it touches the program
        if isinstance(node, ast.expr) and _depends_on_program(node):
            return self._probe(node)
        return node

    def _recurse(self, node):
        return super().generic_visit(node)

    visit_Compare = visit_BoolOp = visit_UnaryOp = visit_BinOp = visit_IfExp = _recurse

    def visit_Call(self, node: ast.Call):
        if not _depends_on_program(node):
            return node
        func = node.func
        skeleton_call = (isinstance(func, ast.Name) and func.id in _SKELETON_CALLS) or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "math"
            and func.attr in _SKELETON_MATH
        )
        if skeleton_call:
            return self._recurse(node)
        return self._probe(node)


@functools.lru_cache(maxsize=4096)  # a reward call runs the same tests for every completion of a prompt
def plan_test(test: str) -> TestPlan | None:
    """
    The trusted-verdict plan of a test, or `None` when the test is not a single `assert` whose non-program parts
    are plain expressions (such a test runs in-process, as before).
    """
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError):
        return None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        return None
    if any(isinstance(node, _LOCAL_SCOPES) for node in ast.walk(module)):
        # Names bound inside the test (comprehension variables, lambda arguments) would look like the program's, and
        # an expected value built with them would become a probe that the program answers: keep these in-process.
        return None
    for node in ast.walk(module):
        # Probes are evaluated eagerly: a call that `and` / `or` / `x if c else y` might skip must not become one
        # (in-process it may never run, e.g. when it would raise).
        if isinstance(node, ast.BoolOp) and any(map(_depends_on_program, node.values[1:])):
            return None
        if isinstance(node, ast.IfExp) and (_depends_on_program(node.body) or _depends_on_program(node.orelse)):
            return None
    splitter = _Splitter()
    try:
        body = splitter.visit(module.body[0].test)
    except RecursionError:
        return None
    if not splitter.probes or len(splitter.probes) > _MAX_PROBES:
        return None
    names = {f"__probe_{i}" for i in range(len(splitter.probes))}
    skeleton = ast.fix_missing_locations(ast.Expression(body=body))
    if not _skeleton_safe(skeleton, names):
        return None
    try:
        probes = [ast.unparse(probe) for probe in splitter.probes]
        code = compile(skeleton, "<test>", "eval")
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return TestPlan(source=test, probes=probes, skeleton=code)
