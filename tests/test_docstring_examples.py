"""
Every `>>>` example in trl_ext's docstrings runs as written (Markdown code fences, as the docs render them, are
stripped first), and so does each class docstring's plain ```python example of the trainers.
"""

import doctest
import importlib
import pkgutil
import re

import pytest

import trl_ext

FENCE = re.compile(r"^\s*```[a-z]*\s*$", re.MULTILINE)


class FencedDocTestParser(doctest.DocTestParser):
    """Markdown fences close an example's expected output (the HF docs convention) instead of being part of it."""

    def parse(self, string, name="<string>"):
        return super().parse(FENCE.sub("", string), name)


def _doctests():
    finder = doctest.DocTestFinder(parser=FencedDocTestParser())
    found = []
    for info in pkgutil.walk_packages(trl_ext.__path__, "trl_ext."):
        module = importlib.import_module(info.name)
        for test in finder.find(module):
            if test.examples and test.name not in [t.name for t in found]:
                found.append(test)
    return found


DOCTESTS = _doctests()

try:
    # DeepSpeed (the `deepspeed` extra) prints "Setting accelerator to CPU" the first time anything asks for its
    # accelerator, from whichever example loads a model first in this process: not part of any example's output.
    from deepspeed.accelerator import get_accelerator

    get_accelerator()
except ImportError:
    pass


def test_examples_were_found():
    assert len(DOCTESTS) > 20


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    lines = []
    runner.run(test, out=lines.append)
    assert runner.failures == 0, "".join(lines)


BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _plain_examples():
    """```python blocks without `>>>` in the docstrings of trl_ext's classes and functions (the trainers' examples)."""
    import inspect

    examples = {}
    for info in pkgutil.walk_packages(trl_ext.__path__, "trl_ext."):
        module = importlib.import_module(info.name)
        members = [module] + [
            obj
            for _, obj in inspect.getmembers(module)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == module.__name__
        ]
        for obj in members:
            for i, block in enumerate(BLOCK.findall(inspect.getdoc(obj) or "")):
                if ">>>" not in block:
                    examples[f"{info.name}.{getattr(obj, '__name__', '')}[{i}]"] = block
    return examples


PLAIN = _plain_examples()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_docstring_example_runs_as_written(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(PLAIN[name], f"<example {name}>", "exec"), {"__name__": "__main__"})
