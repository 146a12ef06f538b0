"""
Hostile programs against the local sandbox: each must score 0 (or be contained), finish within the per-test timeout
plus one second, leave no process behind and leave host files untouched.
"""

import os
import shutil
import socket
import threading
import time
import uuid

import pytest

from trl_ext.rewards import make_code_pass_rate_reward
from trl_ext.sandbox import LocalSandbox

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TIMEOUT = 1.0
RUNNER_MARKER = "trl_ext_sandbox_runner"
IS_ROOT = os.geteuid() == 0


def _bwrap_works():
    if shutil.which("bwrap") is None:
        return False
    try:
        LocalSandbox(use_bwrap=True, max_workers=1).close()
        return True
    except RuntimeError:
        return False


BACKENDS = [
    pytest.param("bwrap", marks=pytest.mark.skipif(not _bwrap_works(), reason="bubblewrap unusable here")),
    "fallback",
]


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox(request):
    box = LocalSandbox(use_bwrap=request.param == "bwrap", max_workers=2)
    yield box
    box.close()


def _processes_matching(*markers):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in markers):
            found.append((int(entry), cmdline[:120]))
    return found


def _assert_no_leftovers(*markers):
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        leftovers = _processes_matching(RUNNER_MARKER, *markers)
        if not leftovers:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes left behind: {leftovers}")


def _score(sandbox, code, tests):
    reward = make_code_pass_rate_reward(sandbox=sandbox, timeout=TIMEOUT)
    completion = [{"role": "assistant", "content": f"Here it is.\n```python\n{code}\n```"}]
    metrics = {}
    start = time.monotonic()
    [score] = reward(prompts=["p"], completions=[completion], test_cases=[tests], log_metric=metrics.__setitem__)
    elapsed = time.monotonic() - start
    assert metrics["code_reward/infra_failures/sandbox_start"] == 0, "the sandbox itself failed"
    return score, elapsed


def _daemon_marker():
    # `sleep` accepts a fractional duration, so a unique number is a marker that survives in the cmdline.
    return f"{9000 + uuid.uuid4().int % 999}.{uuid.uuid4().int % 10**6:06d}"


HOSTILE = {
    "infinite_loop": ("def f():\n    while True:\n        pass", ["assert f() == 1"]),
    "sleep": ("import time\ntime.sleep(30)", ["pass"]),
    "fork_bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        ["pass"],
    ),
    "memory_bomb": ("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))", ["pass"]),
    "huge_output": (
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 65536)",
        ["pass"],
    ),
    "os_exit": ("import os\nos._exit(0)", ["pass"]),
    "sys_exit": ("import sys\nsys.exit(0)", ["pass"]),
    "ignore_sigterm": (
        "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\n"
        "while True:\n    pass",
        ["pass"],
    ),
    "kill_parent": (
        "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(0.2)\nos.kill(-1, signal.SIGKILL)",
        ["assert False"],
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_program_scores_zero(sandbox, case):
    code, tests = HOSTILE[case]
    score, elapsed = _score(sandbox, code, tests)
    assert score == 0.0
    assert elapsed < TIMEOUT * len(tests) + 1.0
    _assert_no_leftovers()


def test_detached_daemon_is_killed(sandbox):
    marker = _daemon_marker()
    code = (
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "import time\ntime.sleep(0.3)\n"
        "running = [p for p in os.listdir('/proc') if p.isdigit()]"
    )
    score, elapsed = _score(sandbox, code, ["assert False"])
    assert score == 0.0
    assert elapsed < TIMEOUT + 1.0
    _assert_no_leftovers(marker)


def test_daemon_surviving_killed_runner_is_reaped(sandbox):
    marker = _daemon_marker()
    code = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "time.sleep(0.2)\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "time.sleep(30)"
    )
    score, elapsed = _score(sandbox, code, ["pass"])
    assert score == 0.0
    assert elapsed < TIMEOUT + 1.0
    _assert_no_leftovers(marker)


@pytest.fixture
def victim(tmp_path):
    directory = tmp_path / "host_dir"
    directory.mkdir()
    path = directory / "victim.txt"
    path.write_text("original")
    return path


def _requires_isolation_of_user_files(sandbox):
    if not sandbox.uses_bwrap and not IS_ROOT:
        pytest.skip("without bubblewrap and root, the program runs as this user and can touch this user's files")


def test_writing_outside_temp_dir(sandbox, victim):
    _requires_isolation_of_user_files(sandbox)
    code = (
        "import os, shutil\n"
        "for action in (lambda: open(VICTIM, 'w').write('pwned'), lambda: os.remove(VICTIM),\n"
        "               lambda: shutil.rmtree(os.path.dirname(VICTIM)), lambda: open('/usr/pwned', 'w')):\n"
        "    try:\n"
        "        action()\n"
        "    except OSError:\n"
        "        pass\n"
    ).replace("VICTIM", repr(str(victim)))
    score, _ = _score(sandbox, code, [f"assert open({str(victim)!r}).read() == 'pwned'"])
    assert score == 0.0
    assert victim.read_text() == "original"
    assert not os.path.exists("/usr/pwned")
    _assert_no_leftovers()


def test_reading_secret_env_var(sandbox, monkeypatch):
    monkeypatch.setenv("TRL_EXT_TEST_SECRET", "hunter2")
    code = "import os\nSECRET = os.environ.get('TRL_EXT_TEST_SECRET')"
    score, _ = _score(sandbox, code, ["assert SECRET == 'hunter2'"])
    assert score == 0.0


def test_reading_ssh_keys(sandbox, tmp_path, monkeypatch):
    _requires_isolation_of_user_files(sandbox)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    key.write_text("-----BEGIN PRIVATE KEY-----")
    key.chmod(0o600)
    (home / ".ssh").chmod(0o700)
    monkeypatch.setenv("HOME", str(home))
    code = (
        "import os\n"
        "def steal():\n"
        f"    for path in ({str(key)!r}, os.path.expanduser('~/.ssh/id_rsa'), '/root/.ssh/id_rsa'):\n"
        "        try:\n"
        "            return open(path).read()\n"
        "        except OSError:\n"
        "            pass\n"
        "    return ''"
    )
    score, _ = _score(sandbox, code, ["assert 'PRIVATE KEY' in steal()"])
    assert score == 0.0


def test_tcp_connection_to_host_listener(sandbox):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(connection.recv(100))
            connection.close()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "s.settimeout(0.5)\n"
            f"s.connect(('127.0.0.1', {port}))\n"
            "s.sendall(b'exfiltrated')"
        )
        score, elapsed = _score(sandbox, code, ["pass"])
        assert score == 0.0
        assert elapsed < TIMEOUT + 1.0
        time.sleep(0.2)
        assert accepted == []
    finally:
        stop.set()
        thread.join()
        server.close()


def test_benign_program_still_passes(sandbox):
    # Guards against a sandbox so strict that everything scores 0 and the tests above pass vacuously.
    code = "import math, collections, re\ndef f(x):\n    return collections.Counter(re.findall('a', x))['a'] + math.floor(0.5)"
    score, _ = _score(sandbox, code, ["assert f('banana') == 3", "assert f('') == 0"])
    assert score == 1.0
