"""
Trusted in-sandbox test runner (trl_ext_sandbox_runner).

[`LocalSandbox`] executes this file's source with `python -I -S -c`, inside bubblewrap when available. It must only
import the standard library. It reads one JSON job from stdin, prints `READY`, then one JSON line per test. Each test
runs in a forked child that sets its own resource limits before touching the untrusted code, so that the runner
survives whatever the code does and can report a timeout or a crash as a failed test.

A job with `"mode": "script"` instead runs the code once as a standalone script under the same limits and prints one
JSON line with its exit status and the tails of its stdout and stderr (base64).
"""

import ctypes
import ctypes.util
import json
import os
import resource
import select
import signal
import struct
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
MAX_DETAIL = 300
MAX_MESSAGE = 8 << 20  # a test's result message: a verdict, or the encoded values of its probes
SETUP_FAILED_EXIT = 125

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option, arg2=0):
    return _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def _install_socket_filter():
    """
    Seccomp filter that makes `socket()` fail with EPERM for every family but AF_UNIX, and disables io_uring (which
    can create sockets without the `socket` syscall). Only used without bubblewrap, where there is no network
    namespace to hide the host's network.
    """
    machine = os.uname().machine
    if machine == "x86_64":
        audit_arch, nr_socket, nr_io_uring_setup = 0xC000003E, 41, 425
    elif machine == "aarch64":
        audit_arch, nr_socket, nr_io_uring_setup = 0xC00000B7, 198, 425
    else:  # no syscall table for this architecture: run without the filter rather than fail every test
        return True
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS: a foreign ABI could bypass the syscall numbers checked below
    program = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, kill),
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jge, 0, 1, 0x40000000),  # x32 ABI numbers alias the 64-bit ones
        (ret, 0, 0, deny),
        (jeq, 0, 1, nr_io_uring_setup),
        (ret, 0, 0, deny),
        (jeq, 0, 3, nr_socket),
        (ld_abs, 0, 0, 16),  # low 32 bits of args[0] (little endian): the address family
        (jeq, 1, 0, 1),  # AF_UNIX
        (ret, 0, 0, deny),
        (ret, 0, 0, allow),
    ]
    buffer = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        return False
    return _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


def _confine(job):
    """Resource limits, the seccomp filter and the uid drop of a forked child; raises if one cannot be applied."""
    cpu = int(job["timeout"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (job["memory_bytes"], job["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["max_file_bytes"], job["max_file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if job.get("seccomp") and not _install_socket_filter():
        raise RuntimeError("could not install the seccomp socket filter")
    if job.get("drop_to_uid") is not None:
        os.setgroups([])
        os.setgid(job["drop_to_uid"])
        os.setuid(job["drop_to_uid"])
    # After the uid change: RLIMIT_NPROC counts the processes of the real uid.
    resource.setrlimit(resource.RLIMIT_NPROC, (job["max_processes"], job["max_processes"]))


_MAX_VALUE_NODES = 200000
_MAX_VALUE_DEPTH = 400


def _encode(value, budget, depth=0):
    """
    A probe's value as tagged JSON, copied through the built-in types' own methods (an overridden `__eq__`,
    `__iter__` or `__class__` changes nothing); anything else is "opaque". Runs in the program's process, so its
    output is only the program's answer: the verdict is taken outside (trl_ext.sandbox.checks).
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_VALUE_DEPTH:
        raise ValueError("probe value too large")
    kind = type(value)
    try:
        if value is None:
            return {"t": "none"}
        if kind is bool:
            return {"t": "bool", "v": value is True}
        if isinstance(value, int):
            return {"t": "int", "v": int.__format__(value, "x")}
        if isinstance(value, float):
            return {"t": "float", "v": float.__repr__(value)}
        if isinstance(value, complex):
            return {"t": "complex", "v": complex.__repr__(value)}
        if isinstance(value, str):
            budget[0] -= len(value) // 64
            return {"t": "str", "v": str.__str__(value)}
        if isinstance(value, bytes):
            budget[0] -= len(value) // 32
            return {"t": "bytes", "v": bytes.hex(value)}
        if isinstance(value, bytearray):
            budget[0] -= len(value) // 32
            return {"t": "bytearray", "v": bytearray.hex(value)}
        for tag, base in (("list", list), ("tuple", tuple), ("set", set), ("frozenset", frozenset)):
            if isinstance(value, base):
                return {"t": tag, "v": [_encode(item, budget, depth + 1) for item in base.__iter__(value)]}
        if isinstance(value, dict):
            # OrderedDict compares with order (to another OrderedDict), Counter with missing counts as zero.
            tag = "dict"
            for name in ("OrderedDict", "Counter"):
                cls = getattr(sys.modules.get("collections"), name, None)
                if cls is not None and isinstance(value, cls):
                    tag = name.lower()
            items = dict.items(value)
            return {
                "t": tag,
                "v": [[_encode(k, budget, depth + 1), _encode(v, budget, depth + 1)] for k, v in items],
            }
        collections_module = sys.modules.get("collections")
        deque = getattr(collections_module, "deque", None)
        if deque is not None and isinstance(value, deque):
            return {"t": "deque", "v": [_encode(item, budget, depth + 1) for item in deque.__iter__(value)]}
        for module, name, tag in (("fractions", "Fraction", "fraction"), ("decimal", "Decimal", "decimal")):
            cls = getattr(sys.modules.get(module), name, None)
            if cls is not None and kind is cls:
                return {"t": tag, "v": cls.__str__(value)}
    except (TypeError, AttributeError):
        pass  # a class that claims to be a built-in (`__class__`) without being one
    return {"t": "opaque", "type": str(getattr(kind, "__name__", "object"))[:100]}


def _child(job, test, write_fd, nonce):
    """Runs in the forked child: confine, then execute the untrusted code. Never returns."""
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Only the result pipe stays open: the runner's protocol channel must be out of reach.
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, 65536)
        _confine(job)
    except BaseException as error:
        os.write(write_fd, f"setup {type(error).__name__}: {error}"[:MAX_DETAIL].encode())
        os._exit(0)
    try:
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(compile(job["code"], "<solution>", "exec"), namespace)
        if isinstance(test, dict):
            # A trusted-verdict test: only the probes run here; their plain values go back, the verdict is taken
            # outside this process.
            budget = [_MAX_VALUE_NODES]
            values = [_encode(eval(compile(p, "<test>", "eval"), namespace), budget) for p in test["probes"]]
            payload = json.dumps(values, separators=(",", ":"))
            os.write(write_fd, f"values {nonce} ".encode())
            view = memoryview(payload.encode())
            while view:
                view = view[os.write(write_fd, view) :]
            os._exit(0)
        exec(compile(test, "<test>", "exec"), namespace)
        # Only reaching this line counts as a pass: `sys.exit(0)` or `os._exit(0)` in the program never get here.
        os.write(write_fd, f"pass {nonce}".encode())
    except BaseException as error:
        try:
            os.write(write_fd, f"fail {type(error).__name__}: {error}"[:MAX_DETAIL].encode())
        except BaseException:
            pass
    os._exit(0)


def _descendants(root_pid):
    """Pids whose parent chain reaches `root_pid` (orphans land on us because we are a child subreaper)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields we need follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    found, frontier = set(), {root_pid}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _kill_leftovers(isolated):
    if isolated:
        # In our own pid namespace, kill(-1) reaches every process but ourselves and the namespace's init.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        for _ in range(20):  # a fork loop may create new processes between scan and kill
            pids = _descendants(os.getpid())
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
    # Reap what we killed: zombies would otherwise count against RLIMIT_NPROC in the next test.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.001)


def _run_test(job, test):
    read_fd, write_fd = os.pipe()
    nonce = os.urandom(16).hex()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job, test, write_fd, nonce)
    os.close(write_fd)
    deadline = start + job["timeout"]
    output = bytearray()
    exited = False
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    watched = [read_fd] + ([pidfd] if pidfd is not None else [])
    while not exited:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select(watched, [], [], remaining if pidfd is not None else min(remaining, 0.01))
        if read_fd in ready:
            chunk = os.read(read_fd, 65536)
            if chunk:
                output += chunk[: max(0, MAX_MESSAGE - len(output))]
            else:
                watched.remove(read_fd)
        if pidfd is not None:
            exited = pidfd in ready
        else:
            exited = os.waitpid(pid, os.WNOHANG)[0] != 0
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    except ProcessLookupError:
        pass
    os.set_blocking(read_fd, False)
    try:
        while len(output) < MAX_MESSAGE:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            output += chunk[: MAX_MESSAGE - len(output)]
    except BlockingIOError:
        pass
    os.close(read_fd)
    if pidfd is not None:
        os.close(pidfd)
    duration = time.monotonic() - start
    text = bytes(output).decode(errors="replace")
    prefix = f"values {nonce} "
    if isinstance(test, dict) and exited and text.startswith(prefix):
        try:
            values = json.loads(text[len(prefix) :])
        except ValueError:
            return {"passed": False, "status": "failed", "detail": "probe values too large", "duration": duration}
        return {"passed": False, "status": "values", "detail": "", "duration": duration, "values": values}
    if isinstance(test, dict):
        text = "" if text.startswith(prefix) else text  # cut off mid-message: a timeout, or killed while writing
    if text == f"pass {nonce}" and not isinstance(test, dict):
        return {"passed": True, "status": "passed", "detail": "", "duration": duration}
    if not exited:
        return {"passed": False, "status": "timeout", "detail": f"exceeded {job['timeout']}s", "duration": duration}
    detail = text[5:] if text.startswith("fail ") else (text or "process exited without reporting a result")
    return {"passed": False, "status": "failed", "detail": detail[:MAX_DETAIL], "duration": duration}


def _script_child(job, out_fd, err_fd):
    """Runs in the forked child of a script job: confine, then run the script. Never returns."""
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.closerange(3, 65536)
        _confine(job)
    except BaseException as error:
        try:
            os.write(2, f"sandbox setup failed: {type(error).__name__}: {error}\n"[:MAX_DETAIL].encode())
        finally:
            os._exit(SETUP_FAILED_EXIT)
    status = 0
    try:
        os.environ.update(job.get("env") or {})
        sys.argv = [job["filename"]]
        namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__file__": job["filename"]}
        exec(compile(job["code"], job["filename"], "exec"), namespace)
    except SystemExit as exit_request:
        code = exit_request.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
        status = 0 if code is None else code if isinstance(code, int) else 1
    except BaseException:
        try:
            kind, error, trace = sys.exc_info()
            traceback.print_exception(kind, error, trace.tb_next)  # from the script's frame, not the runner's
        except BaseException:
            pass
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status & 0xFF)


def _run_script(job):
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_read)
        os.close(err_read)
        _script_child(job, out_write, err_write)
    os.close(out_write)
    os.close(err_write)
    limit = job["max_output_bytes"]
    streams = {out_read: "stdout", err_read: "stderr"}
    data = {"stdout": bytearray(), "stderr": bytearray()}
    truncated = {"stdout": False, "stderr": False}
    open_fds = set(streams)
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    deadline = start + job["timeout"]
    status = None
    drain_until = None
    while True:
        now = time.monotonic()
        if status is None and now >= deadline:
            break
        if status is not None and (not open_fds or now >= drain_until):
            break
        watched = list(open_fds)
        if pidfd is not None and status is None:
            watched.append(pidfd)
        wait = (deadline if status is None else drain_until) - now
        if pidfd is None and status is None:
            wait = min(wait, 0.01)
        ready, _, _ = select.select(watched, [], [], max(wait, 0))
        for fd in ready:
            if fd not in open_fds:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                os.close(fd)
                continue
            buffer = data[streams[fd]]
            buffer += chunk
            if len(buffer) > limit:  # keep the end: that is where a script reports its result
                del buffer[: len(buffer) - limit]
                truncated[streams[fd]] = True
        if status is None and (pidfd is None or pidfd in ready):
            waited, raw = os.waitpid(pid, os.WNOHANG)
            if waited != 0:
                status = os.waitstatus_to_exitcode(raw)
                # A process the script started may still hold the pipes: read what is there, then stop.
                drain_until = time.monotonic() + 0.5
    duration = time.monotonic() - start
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if status is None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    for fd in open_fds:
        os.close(fd)
    if pidfd is not None:
        os.close(pidfd)
    result = {"exit_code": status, "timed_out": status is None, "duration": duration}
    for name in ("stdout", "stderr"):
        result[name] = base64.b64encode(bytes(data[name])).decode()
        result[name + "_truncated"] = truncated[name]
    return result


def main():
    job = json.loads(sys.stdin.read())
    channel = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # Non-dumpable: a same-uid program can neither read our memory nor open /proc/<runner>/fd/* to forge results.
    _prctl(PR_SET_DUMPABLE, 0)
    isolated = job["isolated"]
    if not isolated:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        for name in job.get("preload", []):
            try:
                __import__(name)
            except ImportError:
                pass
    if job.get("mode") == "script":
        # Imported only for scripts (test jobs stay as lean as before), and before any privilege drop.
        global base64, traceback
        import base64
        import site
        import traceback

        for directory in job.get("site_dirs", []):
            site.addsitedir(directory)
        # Imported here, before any privilege drop, when the interpreter's files are unreadable to `nobody`.
        for name in job.get("script_preload", []):
            try:
                __import__(name)
            except Exception:
                pass
        channel.write("READY\n")
        channel.flush()
        result = _run_script(job)
        _kill_leftovers(isolated)
        channel.write(json.dumps(result) + "\n")
        channel.flush()
        return
    channel.write("READY\n")
    channel.flush()
    for index, test in enumerate(job["tests"]):
        result = _run_test(job, test)
        _kill_leftovers(isolated)
        result["index"] = index
        channel.write(json.dumps(result) + "\n")
        channel.flush()


if __name__ == "__main__":
    main()
