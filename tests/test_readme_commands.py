"""
Every command in the README's bash blocks is valid as written: launcher flags parse with accelerate's and torchrun's
own parsers, the config files they name exist and load, the recipe arguments parse with the recipe's parser (unknown
fields fail), and each `python -m ...` / `python recipes/...` command's flags are accepted by that program. The
commands that need GPUs, weights or the Hub are not run; the tiny ones run in other tests.
"""

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """The README's shell commands: bash blocks, `\\` continuations joined, comments and SLURM/env lines dropped,
    `srun ... bash -c '<command>'` unwrapped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "export ")):
                continue
            inner = re.search(r"bash -c '(.*)'", line)
            commands.append(inner.group(1) if inner else line)
    return commands


def split(command: str) -> list[str]:
    """shlex-split, with the shell's variables and arithmetic replaced by plausible values."""
    command = re.sub(r"\$\(\((.*?)\)\)", "16", command)
    command = command.replace('"$SLURM_NNODES"', "2").replace('"$SLURM_NODEID"', "0")
    command = command.replace('"$MASTER_ADDR"', "10.0.0.1").replace('"$MASTER_PORT"', "29500")
    return shlex.split(command, comments=True)


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    kinds = {split(c)[0] for c in COMMANDS}
    assert {"make", "pip", "accelerate", "torchrun", "python"} <= kinds, kinds
    assert not [c for c in COMMANDS if "$" in " ".join(split(c))], "unsubstituted shell variables"


@functools.cache
def _recipe_module(recipe: str):
    spec = importlib.util.spec_from_file_location(f"readme_{Path(recipe).stem}", ROOT / recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_recipe_args(recipe: str, args: list[str], tmp_path) -> None:
    assert (ROOT / recipe).is_file(), recipe
    if "--config" in args:
        config = ROOT / args[args.index("--config") + 1]
        assert config.is_file(), config
        args = [*args]
        args[args.index("--config") + 1] = str(config)
        if yaml.safe_load(config.read_text()).get("bf16"):
            args += ["--bf16", "false"]  # the paper configs' mixed precision needs a GPU; nothing else changes
    if "--output_dir" not in args:
        args += ["--output_dir", str(tmp_path / "out")]
    parsed = _recipe_module(recipe).make_parser().parse_args_and_config(args, fail_with_unknown_args=True)
    assert parsed, (recipe, args)


LAUNCHES = [c for c in COMMANDS if split(c)[0] in ("accelerate", "torchrun")]


@pytest.mark.parametrize("command", LAUNCHES)
def test_launch_commands_parse(command, tmp_path, monkeypatch):
    from accelerate.commands.launch import launch_command_parser
    from torch.distributed.run import get_args_parser

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = split(command)
    if argv[0] == "accelerate":
        assert argv[1] == "launch"
        launch_args = launch_command_parser().parse_args(argv[2:])
        recipe, recipe_args = launch_args.training_script, launch_args.training_script_args
        if launch_args.config_file:
            config = yaml.safe_load((ROOT / launch_args.config_file).read_text())
            assert config["distributed_type"] in ("MULTI_GPU", "DEEPSPEED", "FSDP"), config
    else:
        torchrun_args = get_args_parser().parse_args(argv[1:])
        recipe, recipe_args = torchrun_args.training_script, torchrun_args.training_script_args
    _check_recipe_args(recipe, list(recipe_args), tmp_path)


PROGRAMS = [c for c in COMMANDS if split(c)[0] == "python"]


@pytest.mark.parametrize("command", PROGRAMS)
def test_python_commands_take_their_flags(command):
    argv = split(command)
    program = argv[1:3] if argv[1] == "-m" else argv[1:2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    flags = [a.split("=")[0] for a in argv[len(program) + 1 :] if a.startswith("--")]
    if program[0] == "-m" and program[1].endswith((".convert", ".model_card")):
        # A subcommand (convert gpt / vq, model_card add-eval / validate) with its own flags.
        program_help = [sys.executable, *program, argv[3], "--help"]
    else:
        program_help = [sys.executable, *program, "--help"]
    result = subprocess.run(program_help, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for flag in flags:
        assert re.search(rf"{re.escape(flag)}\b", result.stdout), f"{flag} is not a flag of {' '.join(program)}"


def test_pip_lines_are_valid_requirements():
    from packaging.requirements import Requirement

    from trl_ext.model_card import PROJECT_URL

    lines = [split(c) for c in COMMANDS if split(c)[0] == "pip"]
    assert lines
    for argv in lines:
        target = argv[-1]
        if argv[-2] == "-e":  # the clone's own folder
            assert target.startswith(".[")
            continue
        requirement = Requirement(target)
        assert requirement.name == "trl_ext" and requirement.url == f"git+{PROJECT_URL}"
        known = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), re.M))
        assert requirement.extras <= known, requirement.extras - known
