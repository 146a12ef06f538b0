"""Local code-execution backend: bubblewrap when available, resource limits always, and a bounded worker pool."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path

from .base import (
    OUTER_TIMEOUT,
    POOL_OVERLOADED,
    SANDBOX_START,
    CodeSandbox,
    SandboxInfraError,
    ScriptResult,
    TestResult,
)
from .checks import TestPlan, plan_test

logger = logging.getLogger(__name__)

_RUNNER_SOURCE = (Path(__file__).parent / "_runner.py").read_text()
_JOB_TOKEN_VAR = "TRL_EXT_SANDBOX_JOB"
_NOBODY = 65534
# Seconds granted on top of the per-test timeouts for interpreter start-up and process teardown.
_STARTUP_GRACE = 10.0
_PER_TEST_GRACE = 1.0
# Imported by the runner before dropping to `nobody` in the fallback: once unprivileged it may no longer be able to
# read the interpreter's standard library (e.g. a pyenv install under /root).
_FALLBACK_PRELOAD = (
    "abc", "array", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "heapq", "itertools", "json", "math", "operator", "random", "re", "signal", "socket",
    "statistics", "string", "subprocess", "time", "typing",
)  # fmt: skip
_fallback_warned = False
_bwrap_probe_cache: dict[str, str | None] = {}
_site_packages_cache: dict[str, list[str]] = {}
_SCRIPT_FILENAME = "/tmp/script.py"
_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _site_packages(python: str) -> list[str]:
    """The site-packages directories of `python`'s environment (a virtualenv's own when `python` runs this code)."""
    if python not in _site_packages_cache:
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            import site

            directories = site.getsitepackages()
        else:
            query = "import json, site; print(json.dumps(site.getsitepackages()))"
            try:
                output = subprocess.run([python, "-c", query], capture_output=True, text=True, timeout=30, check=True)
                directories = json.loads(output.stdout)
            except (OSError, subprocess.SubprocessError, ValueError) as error:
                raise SandboxInfraError(
                    SANDBOX_START, f"cannot list the site-packages of {python}: {error}"
                ) from error
        _site_packages_cache[python] = [os.path.realpath(d) for d in directories if os.path.isdir(d)]
    return _site_packages_cache[python]


def _bwrap_failure(bwrap: str) -> str | None:
    """Return why `bwrap` cannot create the sandbox here (e.g. user namespaces disabled), or `None` if it can."""
    if bwrap not in _bwrap_probe_cache:
        try:
            probe = subprocess.run(
                [bwrap, *_bwrap_args(), "/bin/true"], capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"}
            )
            _bwrap_probe_cache[bwrap] = (
                None if probe.returncode == 0 else probe.stderr.decode(errors="replace").strip()
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            _bwrap_probe_cache[bwrap] = str(error)
    return _bwrap_probe_cache[bwrap]


def _bwrap_args(extra_ro_binds: Sequence[str] = ()) -> list[str]:
    args = [
        "--unshare-pid",  # no view of host processes; everything dies with the namespace's init
        "--unshare-net",  # only a down loopback: no network at all
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",  # no TIOCSTI injection into the caller's terminal
        "--cap-drop", "ALL",
    ]  # fmt: skip
    if os.geteuid() == 0:
        # As root, a user namespace would map the sandbox's uid to host root, and the kernel then ignores
        # RLIMIT_NPROC (a fork bomb goes unbounded). Instead the runner stays in the host user namespace with just
        # enough capabilities to drop each test process to the host's `nobody` and to kill what it leaves behind.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args += ["--unshare-user", "--disable-userns", "--uid", str(_NOBODY), "--gid", str(_NOBODY)]
    args += [
        "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", "/tmp",
        "--setenv", "LANG", "C.UTF-8",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(64 * 1024 * 1024), "--tmpfs", "/tmp",
        "--chmod", "1777", "/tmp",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    # The dynamic loader's configuration, and nothing else from /etc (no passwd, hosts, credentials).
    for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", path, path]
    created = set()
    for path in extra_ro_binds:
        # bwrap would create the missing parents with mode 0700, unreadable once the tests drop to `nobody`.
        parents = [str(parent) for parent in reversed(Path(path).parents) if str(parent) != "/"]
        if parents and parents[0] not in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"):
            for parent in parents:
                if parent not in created:
                    created.add(parent)
                    args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", path, path]
    args += ["--remount-ro", "/", "--chdir", "/tmp"]
    return args


def _interpreter_prefix_binds(python: str) -> list[str]:
    """Directories the interpreter needs that the system binds do not cover (e.g. a pyenv or conda install)."""
    prefixes = {os.path.realpath(sys.base_prefix), os.path.dirname(os.path.dirname(os.path.realpath(python)))}
    return sorted(p for p in prefixes if not p.startswith(("/usr/", "/bin/", "/lib")) and p not in ("/usr", "/"))


def _scan_processes_with_token(token: str) -> list[int]:
    needle = f"{_JOB_TOKEN_VAR}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


class LocalSandbox(CodeSandbox):
    """
    Runs untrusted Python on this machine.

    With [bubblewrap](https://github.com/containers/bubblewrap) (`bwrap`) on the `PATH`, each program runs in fresh
    pid, network, ipc and uts namespaces (plus a user namespace when not root; as root, no user namespace, since it
    would lift `RLIMIT_NPROC`) and each test process as uid `nobody`: no network, read-only system
    directories, a private size-limited `/tmp`, no home directory or `/etc` secrets, a scrubbed environment, and the
    whole process tree dies with the sandbox. Without it, the fallback keeps the resource limits, a scrubbed
    environment, a temporary working directory, a seccomp filter that blocks non-Unix sockets, a drop to `nobody` when
    running as root, and a reaper that kills every leftover process, but the program can still read files the user
    can read: a warning says so once.

    In both modes each test runs in its own forked process with limits on CPU time, address space, number of
    processes and file size, and the process group is killed with `SIGKILL` (which cannot be ignored) on timeout.

    Jobs run on a thread pool with at most `max_workers` sandboxes at once and at most `max_queue` jobs waiting.

    Args:
        max_workers (`int`, *optional*):
            Number of programs executed concurrently. Defaults to the number of CPU cores.
        max_queue (`int`, *optional*, defaults to `1024`):
            Maximum number of jobs waiting for a worker. A job that finds the queue full for `queue_timeout` seconds
            fails with a `pool_overloaded` [`SandboxInfraError`].
        queue_timeout (`float`, *optional*, defaults to `60.0`):
            Seconds a job may wait for room in the queue.
        use_bwrap (`bool`, *optional*):
            `True` requires bubblewrap, `False` forces the fallback, `None` uses bubblewrap when it works here.
        memory_limit_mb (`int`, *optional*, defaults to `1024`):
            Address-space limit of each test process, in MiB.
        max_processes (`int`, *optional*, defaults to `64`):
            `RLIMIT_NPROC` of each test process (a fork bomb fails at this many processes).
        max_file_size_mb (`int`, *optional*, defaults to `16`):
            Largest file a test process may write, in MiB.
        python_executable (`str`, *optional*):
            Interpreter that runs the programs. Defaults to the one running this code (only its standard library is
            visible: the program runs with `-I -S`).
        extra_ro_binds (`Sequence[str]`, *optional*, defaults to `()`):
            Extra host directories made visible read-only inside bubblewrap (e.g. a site-packages directory with
            libraries the programs may import).
        trusted_verdicts (`bool`, *optional*, defaults to `True`):
            Take the verdict of single-`assert` tests outside the program's process
            ([`~trl_ext.sandbox.checks.plan_test`]): the sandbox evaluates only the calls into the program and
            returns their values as plain data, and the comparison runs here. Closes the reward hacks in which the
            program returns an object equal to everything or reports its own pass. Other tests run in-process.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        max_queue: int = 1024,
        queue_timeout: float = 60.0,
        use_bwrap: bool | None = None,
        memory_limit_mb: int = 1024,
        max_processes: int = 64,
        max_file_size_mb: int = 16,
        python_executable: str | None = None,
        extra_ro_binds: Sequence[str] = (),
        trusted_verdicts: bool = True,
    ):
        self.trusted_verdicts = trusted_verdicts
        self.max_workers = max_workers or os.cpu_count() or 1
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.memory_limit_mb = memory_limit_mb
        self.max_processes = max_processes
        self.max_file_size_mb = max_file_size_mb
        self.python_executable = os.path.realpath(python_executable or sys.executable)
        self._extra_ro_binds = list(extra_ro_binds)
        bwrap = shutil.which("bwrap")
        failure = "bwrap is not installed" if bwrap is None else _bwrap_failure(bwrap)
        if use_bwrap and failure is not None:
            raise RuntimeError(f"use_bwrap=True but bubblewrap cannot create a sandbox here: {failure}")
        self.uses_bwrap = failure is None and use_bwrap is not False
        if self.uses_bwrap:
            binds = [*_interpreter_prefix_binds(self.python_executable), *extra_ro_binds]
            self._command_prefix = [bwrap, *_bwrap_args(binds)]
        else:
            self._command_prefix = []
            if use_bwrap is None:
                _warn_fallback(failure)
        self._slots = threading.BoundedSemaphore(self.max_workers + self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="trl_ext-sandbox")
        self._closed = False

    @property
    def isolation(self) -> str:
        """`"bwrap"` or `"rlimits"` (the weaker fallback)."""
        return "bwrap" if self.uses_bwrap else "rlimits"

    def _outer_timeout(self, n_tests: int, timeout: float) -> float:
        return _STARTUP_GRACE + n_tests * (timeout + _PER_TEST_GRACE)

    def _result_deadline(self, n_tests: int, timeout: float) -> float:
        # The worker enforces the outer timeout itself; this one only catches a worker that got stuck regardless.
        return self._outer_timeout(n_tests, timeout) + _STARTUP_GRACE

    def _submit(self, code: str, tests: Sequence[str], timeout: float, wait: float) -> Future:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        if not self._slots.acquire(timeout=wait):
            raise SandboxInfraError(POOL_OVERLOADED, f"more than {self.max_queue} jobs queued for {wait:.0f}s")
        try:
            future = self._executor.submit(self._execute, code, list(tests), float(timeout))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def run(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        future = self._submit(code, tests, timeout, self.queue_timeout)
        return self._result(future, len(tests), timeout)

    def _result(self, future: Future, n_tests: int, timeout: float) -> list[TestResult]:
        limit = self._result_deadline(n_tests, timeout)
        try:
            return future.result(timeout=limit)
        except FutureTimeoutError:
            raise SandboxInfraError(OUTER_TIMEOUT, f"no result after {limit:.0f}s") from None

    async def arun(self, code: str, tests: Sequence[str], timeout: float) -> list[TestResult]:
        try:
            future = self._submit(code, tests, timeout, 0)
        except SandboxInfraError:  # the queue is full: wait for room without blocking the event loop
            future = await asyncio.to_thread(self._submit, code, tests, timeout, self.queue_timeout)
        limit = self._result_deadline(len(tests), timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except asyncio.TimeoutError:
            raise SandboxInfraError(OUTER_TIMEOUT, f"no result after {limit:.0f}s") from None

    def run_batch(
        self, jobs: Sequence[tuple[str, Sequence[str]]], timeout: float
    ) -> list[list[TestResult] | SandboxInfraError]:
        futures: list[Future | SandboxInfraError] = []
        for code, tests in jobs:
            try:
                futures.append(self._submit(code, tests, timeout, self.queue_timeout))
            except SandboxInfraError as error:
                futures.append(error)
        outputs: list[list[TestResult] | SandboxInfraError] = []
        for future, (_, tests) in zip(futures, jobs):
            if isinstance(future, SandboxInfraError):
                outputs.append(future)
                continue
            try:
                outputs.append(self._result(future, len(tests), timeout))
            except SandboxInfraError as error:
                outputs.append(error)
        return outputs

    def _execute(self, code: str, tests: list[str], timeout: float) -> list[TestResult]:
        """Worker-thread body: one sandboxed runner process for all the tests of one program."""
        if not tests:
            return []
        token = uuid.uuid4().hex
        plans = [plan_test(test) if self.trusted_verdicts else None for test in tests]
        job = {
            "code": code,
            # Tests with a trusted verdict send only their probes: the expected values never enter the sandbox.
            "tests": [test if plan is None else {"probes": plan.probes} for test, plan in zip(tests, plans)],
            "timeout": timeout,
            "memory_bytes": self.memory_limit_mb * 1024 * 1024,
            "max_processes": self.max_processes,
            "max_file_bytes": self.max_file_size_mb * 1024 * 1024,
            "isolated": self.uses_bwrap,
            "seccomp": not self.uses_bwrap,
        }
        workdir = None
        if self.uses_bwrap:
            cwd = None
            env = {"PATH": "/usr/bin:/bin"}
        else:
            workdir = tempfile.mkdtemp(prefix="trl_ext-sandbox-")
            cwd = workdir
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", _JOB_TOKEN_VAR: token}
            if os.geteuid() == 0:
                os.chown(workdir, _NOBODY, _NOBODY)
                job["preload"] = list(_FALLBACK_PRELOAD)
        if os.geteuid() == 0:
            job["drop_to_uid"] = _NOBODY
        command = [*self._command_prefix, self.python_executable, "-I", "-S", "-B", "-c", _RUNNER_SOURCE]
        outer_timeout = self._outer_timeout(len(tests), timeout)
        stdout, stderr, timed_out = self._run_runner(command, env, cwd, job, outer_timeout, token, workdir)
        return self._parse(stdout, stderr, plans, timed_out, outer_timeout)

    def _run_runner(
        self, command: list[str], env: dict, cwd: str | None, job: dict, outer_timeout: float, token: str, workdir
    ) -> tuple[bytes, bytes, bool]:
        """Start the runner, hand it `job`, wait at most `outer_timeout`; always clean up what it left behind."""
        try:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,  # one killpg reaches bwrap and everything it started
                    close_fds=True,
                )
            except OSError as error:
                raise SandboxInfraError(SANDBOX_START, f"could not start the sandbox: {error}") from error
            try:
                stdout, stderr = process.communicate(json.dumps(job).encode(), timeout=outer_timeout)
                return stdout, stderr, False
            except subprocess.TimeoutExpired:
                _kill_group(process)
                stdout, stderr = process.communicate()
                return stdout, stderr, True
            except BaseException:
                _kill_group(process)
                raise
        finally:
            if not self.uses_bwrap:
                # Without a pid namespace, a daemon that escaped the runner (e.g. after killing it) is still around.
                for pid in _scan_processes_with_token(token):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _parse(
        stdout: bytes, stderr: bytes, plans: list[TestPlan | None], timed_out: bool, outer_timeout: float
    ) -> list[TestResult]:
        """The runner's result lines, one per test; a trusted-verdict test's probe values are judged by its plan."""
        lines = stdout.decode(errors="replace").splitlines()
        if not lines or lines[0] != "READY":
            message = stderr.decode(errors="replace").strip()[-500:] or "the runner exited before starting"
            if timed_out:
                raise SandboxInfraError(SANDBOX_START, f"runner not ready after {outer_timeout:.0f}s: {message}")
            raise SandboxInfraError(SANDBOX_START, message)
        results: list[TestResult | None] = [None] * len(plans)
        for line in lines[1:]:
            try:
                record = json.loads(line)
                index, passed, status, detail = record["index"], record["passed"], record["status"], record["detail"]
                plan = plans[index]
                if status == "values" and plan is not None:  # the verdict is taken here, not in the sandbox
                    passed, detail = plan.verdict(record["values"])
                    status = "passed" if passed else "failed"
                results[index] = TestResult(bool(passed), status, detail, record["duration"])
            except (ValueError, KeyError, IndexError, TypeError):
                continue
        # The runner was up, so it dying mid-way (e.g. the program killed its parent) is the program's fault.
        detail = "sandbox timed out" if timed_out else "the runner was killed"
        return [r if r is not None else TestResult(passed=False, status="failed", detail=detail) for r in results]

    def run_script(
        self,
        code: str,
        timeout: float,
        allow_site_packages: bool = True,
        env: Mapping[str, str] | None = None,
        max_output_bytes: int = 16 * 1024 * 1024,
        ro_binds: Sequence[str] = (),
        preload: Sequence[str] = (),
    ) -> ScriptResult:
        """
        Run `code` once as a standalone script, with the isolation and limits of [`~LocalSandbox.run`], and return
        its exit status and output.

        The script runs as `__main__` from `/tmp/script.py` (a private, size-limited `/tmp` under bubblewrap, a
        temporary directory otherwise), with no network, stdin at end of file and the sandbox's memory, CPU-time,
        process and file-size limits; everything it started is killed when it ends or times out.

        Args:
            code (`str`):
                The script.
            timeout (`float`):
                Wall-clock limit in seconds (interpreter start-up of the sandbox excluded).
            allow_site_packages (`bool`, *optional*, defaults to `True`):
                Make the site-packages of the sandbox's interpreter (this virtualenv's by default) importable: they
                are bound read-only under bubblewrap and added with `site.addsitedir` (the interpreter still runs
                with `-I -S`: no user site, no environment variables, no current directory on `sys.path`).
            env (`Mapping[str, str]`, *optional*):
                Extra environment variables (e.g. `{"MPLBACKEND": "Agg"}`).
            max_output_bytes (`int`, *optional*, defaults to `16 MiB`):
                How much of the end of stdout and of stderr is kept.
            ro_binds (`Sequence[str]`, *optional*, defaults to `()`):
                Extra host directories visible read-only to this script under bubblewrap (e.g. a prepared cache).
            preload (`Sequence[str]`, *optional*, defaults to `()`):
                Modules imported by the trusted runner before the script starts. Needed in the fallback as root,
                where the script runs as `nobody` and may be unable to read the interpreter's files.

        Returns:
            [`ScriptResult`]
        """
        args = _script_args(code, timeout, allow_site_packages, env, max_output_bytes, ro_binds, preload)
        future = self._submit_call(self._execute_script, args, self.queue_timeout)
        return self._script_result(future, timeout)

    async def arun_script(
        self,
        code: str,
        timeout: float,
        allow_site_packages: bool = True,
        env: Mapping[str, str] | None = None,
        max_output_bytes: int = 16 * 1024 * 1024,
        ro_binds: Sequence[str] = (),
        preload: Sequence[str] = (),
    ) -> ScriptResult:
        """Asynchronous version of [`~LocalSandbox.run_script`]."""
        args = _script_args(code, timeout, allow_site_packages, env, max_output_bytes, ro_binds, preload)
        try:
            future = self._submit_call(self._execute_script, args, 0)
        except SandboxInfraError:  # the queue is full: wait for room without blocking the event loop
            future = await asyncio.to_thread(self._submit_call, self._execute_script, args, self.queue_timeout)
        limit = self._result_deadline(1, timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except asyncio.TimeoutError:
            raise SandboxInfraError(OUTER_TIMEOUT, f"no result after {limit:.0f}s") from None

    def _submit_call(self, function, args: tuple, wait: float) -> Future:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        if not self._slots.acquire(timeout=wait):
            raise SandboxInfraError(POOL_OVERLOADED, f"more than {self.max_queue} jobs queued for {wait:.0f}s")
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def _script_result(self, future: Future, timeout: float) -> ScriptResult:
        limit = self._result_deadline(1, timeout)
        try:
            return future.result(timeout=limit)
        except FutureTimeoutError:
            raise SandboxInfraError(OUTER_TIMEOUT, f"no result after {limit:.0f}s") from None

    def _execute_script(
        self,
        code: str,
        timeout: float,
        allow_site_packages: bool,
        env: dict[str, str],
        max_output_bytes: int,
        ro_binds: Sequence[str],
        preload: Sequence[str],
    ) -> ScriptResult:
        """Worker-thread body of [`~LocalSandbox.run_script`]: one sandboxed runner process in script mode."""
        site_dirs = _site_packages(self.python_executable) if allow_site_packages else []
        token = uuid.uuid4().hex
        job = {
            "mode": "script",
            "code": code,
            "filename": _SCRIPT_FILENAME,
            "timeout": timeout,
            "memory_bytes": self.memory_limit_mb * 1024 * 1024,
            "max_processes": self.max_processes,
            "max_file_bytes": self.max_file_size_mb * 1024 * 1024,
            "max_output_bytes": max_output_bytes,
            "isolated": self.uses_bwrap,
            "seccomp": not self.uses_bwrap,
            "site_dirs": site_dirs,
            "script_preload": list(preload),
            "env": {"HOME": "/tmp", "TMPDIR": "/tmp", **env},
        }
        workdir = None
        if self.uses_bwrap:
            binds = [*_interpreter_prefix_binds(self.python_executable), *self._extra_ro_binds, *site_dirs]
            binds += [os.path.realpath(path) for path in ro_binds]
            command_prefix = [self._command_prefix[0], *_bwrap_args(list(dict.fromkeys(binds)))]
            cwd = None
            process_env = {"PATH": "/usr/bin:/bin"}
        else:
            command_prefix = []
            workdir = tempfile.mkdtemp(prefix="trl_ext-sandbox-")
            # The script's relative paths and /tmp-style scratch files land in the job's own directory.
            job["filename"] = os.path.join(workdir, "script.py")
            job["env"].update(HOME=workdir, TMPDIR=workdir)
            cwd = workdir
            process_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
            process_env[_JOB_TOKEN_VAR] = token
            if os.geteuid() == 0:
                os.chown(workdir, _NOBODY, _NOBODY)
                job["preload"] = list(_FALLBACK_PRELOAD)
        if os.geteuid() == 0:
            job["drop_to_uid"] = _NOBODY
        command = [*command_prefix, self.python_executable, "-I", "-S", "-B", "-c", _RUNNER_SOURCE]
        outer_timeout = self._outer_timeout(1, timeout)
        stdout, stderr, timed_out = self._run_runner(command, process_env, cwd, job, outer_timeout, token, workdir)
        return self._parse_script(stdout, stderr, timed_out, outer_timeout)

    @staticmethod
    def _parse_script(stdout: bytes, stderr: bytes, timed_out: bool, outer_timeout: float) -> ScriptResult:
        lines = stdout.decode(errors="replace").splitlines()
        if not lines or lines[0] != "READY":
            message = stderr.decode(errors="replace").strip()[-500:] or "the runner exited before starting"
            if timed_out:
                raise SandboxInfraError(SANDBOX_START, f"runner not ready after {outer_timeout:.0f}s: {message}")
            raise SandboxInfraError(SANDBOX_START, message)
        for line in lines[1:]:
            try:
                record = json.loads(line)
                return ScriptResult(
                    exit_code=record["exit_code"],
                    stdout=base64.b64decode(record["stdout"]),
                    stderr=base64.b64decode(record["stderr"]),
                    timed_out=bool(record["timed_out"]),
                    duration=float(record["duration"]),
                    stdout_truncated=bool(record["stdout_truncated"]),
                    stderr_truncated=bool(record["stderr_truncated"]),
                )
            except (ValueError, KeyError, TypeError):
                continue
        # The runner was up, so it dying mid-way (e.g. the script killed its parent) is the script's fault.
        detail = b"sandbox timed out" if timed_out else b"the runner was killed"
        return ScriptResult(exit_code=None if timed_out else -9, stderr=detail, timed_out=timed_out)

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)


def _script_args(code, timeout, allow_site_packages, env, max_output_bytes, ro_binds, preload) -> tuple:
    """Validated arguments of [`LocalSandbox._execute_script`]."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a string, got {type(code).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if max_output_bytes <= 0:
        raise ValueError(f"max_output_bytes must be positive, got {max_output_bytes}")
    for key, value in (env or {}).items():
        if not key or not set(key) <= _ENV_NAME_CHARS or not isinstance(value, str):
            raise ValueError(f"env: {key!r}={value!r} must map variable names ([A-Za-z0-9_]) to strings")
    for path in ro_binds:
        if not os.path.isabs(path) or not os.path.exists(path):
            raise ValueError(f"ro_binds: {path!r} must be an existing absolute path")
    return (
        code,
        float(timeout),
        allow_site_packages,
        dict(env or {}),
        int(max_output_bytes),
        tuple(ro_binds),
        tuple(preload),
    )


def _kill_group(process: subprocess.Popen) -> None:
    # Only while the runner is unreaped: afterwards its pid, hence its process group id, may belong to someone else.
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _warn_fallback(reason: str | None) -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(
            f"bubblewrap is unavailable ({reason}); generated code runs with resource limits, a scrubbed environment, "
            "a seccomp socket filter and a temporary directory only, so it can read any file this user can read. "
            "Install bubblewrap (`apt-get install bubblewrap`) for full isolation.",
            stacklevel=3,
        )
