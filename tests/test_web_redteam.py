"""
The AesCoder reward against the policy it trains (issue 13), with Debian's real Chromium: each hostile page is scored in
a batch next to innocent pages, and the batch must return within its deadline, the hostile page must get a bounded
verdict, and every innocent page must get exactly the reward it gets in a clean batch. Nothing may reach the network,
and nothing may be left running.
"""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from trl_ext.rewards.agentic import AgenticAestheticReward
from trl_ext.web import BrowserPool, chromium_available
from trl_ext.web.browser import _descendants, find_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available(), reason="needs Chromium: `apt-get install chromium` (make installs it)"
    ),
]

PAGE_TIMEOUT = 5.0


def page(body: str, title: str = "Bakery") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>"
    )


INNOCENT = [
    page(
        '<header><h1>Crumb &amp; Co bakery</h1><nav><a href="#menu">Menu</a></nav></header>\n<main><section id="menu">'
        "<h2>Fresh every morning</h2><p>Sourdough, rye and croissants baked before sunrise.</p></section></main>"
    ),
    page(
        '<main style="max-width:700px;margin:auto;font-family:sans-serif"><h1>Opening hours</h1>\n<ul><li>Monday to '
        "Friday: 7 to 18</li><li>Saturday: 8 to 14</li></ul><p>Call us to order a cake for your party.</p></main>"
    ),
]
PROMPT = "A landing page for a small bakery with its menu and opening hours"

HOSTILE = {
    # Spins in the resize handler: the phone-viewport check used to wait forever.
    "resize_spinner": "<h1>Bakery</h1><script>addEventListener('resize', () => { while (true) {} });</script>",
    # 2000 console errors per task, forever.
    "console_flood": "<h1>Bakery</h1><script>setInterval(() => { for (let i = 0; i < 2000; i++) "
    "console.error('flood ' + i + ' ' + 'x'.repeat(200)); }, 0);</script>",
    # A fragment shader that burns the GPU process (software WebGL) every frame.
    "webgl_shader": '<h1>Bakery</h1><canvas id="c" width="1024" height="1024"></canvas><script>'
    "const gl = document.getElementById('c').getContext('webgl');"
    "if (gl) { const s = (t, src) => { const x = gl.createShader(t); gl.shaderSource(x, src); gl.compileShader(x); "
    "return x; }; const p = gl.createProgram();"
    "gl.attachShader(p, s(gl.VERTEX_SHADER, 'attribute vec2 a; void main() { gl_Position = vec4(a, 0., 1.); }'));"
    "gl.attachShader(p, s(gl.FRAGMENT_SHADER, 'precision highp float; void main() { float v = 0.; "
    "for (int i = 0; i < 20000; i++) { v = fract(sin(v + float(i)) * 43758.5); } gl_FragColor = vec4(v); }'));"
    "gl.linkProgram(p); gl.useProgram(p); const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b);"
    "gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1,-1, 3,-1, -1,3]), gl.STATIC_DRAW);"
    "gl.enableVertexAttribArray(0); gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);"
    "const draw = () => { gl.drawArrays(gl.TRIANGLES, 0, 3); requestAnimationFrame(draw); }; draw(); }</script>",
    # Spins when the page is hidden, i.e. when the next completion used to be navigated into the same tab.
    "pagehide_spinner": "<h1>Bakery</h1><p>Bread.</p><script>addEventListener('pagehide', () => { while (true) {} });"
    "</script>",
    # Thousands of requests to its own origin.
    "request_flood": "<h1>Bakery</h1><script>let n = 0; setInterval(() => { for (let i = 0; i < 200; i++) "
    "fetch('/f' + (n++)).catch(() => {}); }, 0);</script>",
    # Popups that spin (same process as the opener) and keep opening.
    "popup_spinner": "<h1>Bakery</h1><script>setInterval(() => { const w = window.open(''); if (w) "
    "w.document.write('<script>setInterval(() => { const t = Date.now(); while (Date.now() - t < 50) {} }, 0)"
    "<\\/script>'); }, 20);</script>",
    # Grows its memory without bound.
    "memory_bomb": "<h1>Bakery</h1><script>const hoard = []; setInterval(() => "
    "hoard.push(new Uint8Array(128 << 20).fill(7)), 10);</script>",
    # Navigates to a blocked URL: Chromium's error page is not the completion's work.
    "blocked_navigation": "<h1>Bakery</h1><script>location.href = 'https://example.com/bakery';</script>",
}


def _our_processes() -> set[int]:
    """Browsers, sandboxes and Playwright drivers started by this test process."""
    return set(
        _descendants(
            os.getpid(), lambda command: any(name in command for name in ("chrom", "unshare", "playwright/driver"))
        )
    )


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if os.path.exists(f"/proc/{pid}") and not _zombie(pid)}
        if not alive:
            return set()
        time.sleep(0.2)
    return alive


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def pool():
    before = _our_processes()
    pool = BrowserPool(size=2, page_timeout=PAGE_TIMEOUT, settle_ms=100, max_browser_memory_mb=1024)
    yield pool
    started = _our_processes() - before
    pool.close()
    assert started, "the pool's processes should have been visible"
    assert not _wait_gone(started), "browser or driver processes outlived close()"


def evaluate(pool, completions):
    """A fresh reward (no cache) on the shared pool: the offline judge, no GUI agent."""
    reward = AgenticAestheticReward(pool=pool, interactive=False, max_infrastructure_failure_rate=None)
    start = time.monotonic()
    evaluations = reward.evaluate([PROMPT] * len(completions), completions)
    return evaluations, time.monotonic() - start, reward


@pytest.fixture(scope="module")
def clean_rewards(pool):
    evaluations, _, reward = evaluate(pool, INNOCENT)
    totals = [e.total(reward.weights) for e in evaluations]
    # Scored as ordinary pages (a page at fault gets 0.1 or less; the unstyled first page 0.46, the second 0.57).
    assert all(t is not None and t > 0.4 for t in totals), [e.failures for e in evaluations]
    return totals


# First try, the lone retry in a fresh browser, a control page, two browser starts, and slack for a loaded machine.
BATCH_DEADLINE = 3 * PAGE_TIMEOUT + 20


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_page_next_to_innocent_pages(pool, clean_rewards, case):
    batch = [INNOCENT[0], page(HOSTILE[case]), INNOCENT[1]]
    evaluations, seconds, reward = evaluate(pool, batch)
    assert seconds < BATCH_DEADLINE, f"{case}: the batch took {seconds:.1f} s"
    innocent = [evaluations[0].total(reward.weights), evaluations[2].total(reward.weights)]
    assert innocent == pytest.approx(clean_rewards, abs=1e-6), [evaluations[0].failures, evaluations[2].failures]
    hostile = evaluations[1]
    total = hostile.total(reward.weights)
    assert total is None or -0.1 <= total <= 1.0
    if hostile.render is not None:
        assert len(hostile.render.console_errors) <= 50 and len(hostile.render.failed_requests) <= 50
    expected = {
        "resize_spinner": {"page_timeout", "page_error", "machine_slow"},
        "console_flood": {"runtime_errors", "page_timeout", "machine_slow"},
        "request_flood": {"runtime_errors", "page_timeout", "page_memory", "machine_slow"},
        "memory_bomb": {"page_memory", "page_crashed", "page_timeout", "machine_slow"},
        "blocked_navigation": {"page_error"},
    }.get(case)
    if expected is not None:
        assert set(hostile.failures) & expected, hostile.failures
    if case == "blocked_navigation":
        assert total == pytest.approx(-0.1)  # the error page is not scored as the completion's work


def test_cold_start_launches_exactly_pool_size_browsers_and_close_leaves_nothing():
    before = _our_processes()
    with BrowserPool(size=3, page_timeout=10.0, settle_ms=0, mobile_viewport=None) as cold:
        results = cold.render_many(INNOCENT * 6)  # twelve pages arrive before the first start has finished
        assert all(not isinstance(r, BaseException) and r.ok for r in results), results
        assert cold.stats.browser_launches == 3
        started = _our_processes() - before
        drivers = [pid for pid in started if "playwright/driver" in open(f"/proc/{pid}/cmdline").read()]
        assert len(drivers) == 1
    assert not _wait_gone(started)


def test_interpreter_exit_without_close_leaves_no_process():
    script = textwrap.dedent(
        """
        import os
        from trl_ext.web import BrowserPool
        from trl_ext.web.browser import _descendants
        pool = BrowserPool(size=2, settle_ms=0, mobile_viewport=None)
        assert all(r.ok for r in pool.render_many(["<!DOCTYPE html><title>t</title><p>hi</p>"] * 2))
        print(" ".join(map(str, _descendants(os.getpid(), lambda c: "chrom" in c or "playwright" in c))))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    pids = {int(pid) for pid in out.stdout.split()}
    assert pids
    assert not _wait_gone(pids)


def test_no_state_crosses_between_completions():
    writer = page(
        "<p>writer</p><script>document.cookie = 'a=leak; domain=trl-ext.invalid; path=/'; document.cookie = 'b=leak';"
        "localStorage.setItem('c', 'leak'); sessionStorage.setItem('d', 'leak'); window.name = 'leak';</script>"
    )
    reader = page(
        "<p id=v></p><script>const seen = [document.cookie, localStorage.getItem('c'), sessionStorage.getItem('d'),"
        "window.name].filter(Boolean); document.getElementById('v').textContent = (seen.length ? 'LEAK ' + seen : "
        "'clean') + ' at ' + location.host;</script>"
    )
    with BrowserPool(size=1, page_timeout=10.0, settle_ms=0, mobile_viewport=None) as one:
        texts = [one.render(html).metrics["text_sample"] for html in (writer, reader, writer, reader)]
    assert texts[1].startswith("clean") and texts[3].startswith("clean"), texts
    hosts = [texts[1].split(" at ")[1], texts[3].split(" at ")[1]]
    # Each completion has its own site: two labels, the registry `invalid` and a random name, never shared.
    assert hosts[0] != hosts[1] and all(h.count(".") == 1 and h.endswith(".invalid") for h in hosts), hosts


# ----------------------------------------------------------------------------------------------------------------
# The network: listeners on loopback and on the host's own non-loopback address, TCP and UDP, and a DNS stub.
# ----------------------------------------------------------------------------------------------------------------
def _host_address() -> str | None:
    """This machine's non-loopback IPv4 address (found without sending anything)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    for address in out:
        if "." in address and not address.startswith("127."):
            return address
    return None


class Listeners:
    """TCP and UDP listeners on loopback and the host address, and a DNS stub on 127.0.0.1:53; they count contacts."""

    def __init__(self):
        self.contacts: list[str] = []
        self.sockets = []
        self.ports = {}
        self.host = _host_address()
        for address in ["127.0.0.1", *([self.host] if self.host else [])]:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind((address, 0))
            tcp.listen(16)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((address, 0))
            self.ports[address] = (tcp.getsockname()[1], udp.getsockname()[1])
            self.sockets += [(f"tcp {address}", tcp), (f"udp {address}", udp)]
        self.dns = None
        try:
            dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            dns.bind(("127.0.0.1", 53))
            self.sockets.append(("dns", dns))
            self.dns = dns
        except OSError:
            pass
        for sock in (s for _, s in self.sockets):
            sock.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=pair, daemon=True) for pair in self.sockets]
        for thread in self._threads:
            thread.start()

    def _serve(self, name, sock):
        while not self._stop.is_set():
            try:
                if sock.type == socket.SOCK_STREAM:
                    connection, peer = sock.accept()
                    self.contacts.append(f"{name} from {peer}")
                    connection.close()
                else:
                    _, peer = sock.recvfrom(4096)
                    self.contacts.append(f"{name} from {peer}")
            except (TimeoutError, OSError):
                continue

    def hostile_page(self) -> str:
        lines = []
        for address, (tcp, udp) in self.ports.items():
            lines += [
                f"try {{ new WebSocket('ws://{address}:{tcp}/chosen-path'); }} catch (e) {{}}",
                f"fetch('http://{address}:{tcp}/f').catch(() => {{}});",
                f"new Image().src = 'http://{address}:{tcp}/i.png';",
                f"try {{ navigator.sendBeacon('http://{address}:{tcp}/b', 'x'); }} catch (e) {{}}",
                f"try {{ new EventSource('http://{address}:{tcp}/e'); }} catch (e) {{}}",
                f"ice.push({{urls: 'stun:{address}:{udp}'}}, {{urls: 'turn:{address}:{udp}?transport=udp', "
                "username: 'u', credential: 'p'}, "
                f"{{urls: 'turn:{address}:{tcp}?transport=tcp', username: 'u', credential: 'p'}});",
            ]
        tcp, udp = self.ports["127.0.0.1"]
        # Names that need a resolver (the DNS stub), and this machine's own name (from /etc/hosts).
        lines += [
            f"try {{ new WebSocket('ws://leak-probe.example:{tcp}/'); }} catch (e) {{}}",
            f"try {{ new WebSocket('ws://{socket.gethostname()}:{tcp}/'); }} catch (e) {{}}",
            f"ice.push({{urls: 'stun:stun-probe.example:{udp}'}});",
        ]
        script = "\n".join(
            [
                "const ice = [];",
                *lines,
                "const frame = document.createElement('iframe'); document.body.append(frame);",
                "for (const scope of [window, frame.contentWindow]) {",
                "  try { const pc = new scope.RTCPeerConnection({iceServers: ice}); pc.createDataChannel('x');",
                "  pc.createOffer().then(o => pc.setLocalDescription(o)); (window.__pcs ||= []).push(pc); } catch (e) {}",
                "}",
            ]
        )
        return page(f"<h1>Bakery</h1><script>{script}</script>")

    def close(self):
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for _, sock in self.sockets:
            sock.close()


@pytest.fixture
def listeners():
    listening = Listeners()
    yield listening
    listening.close()


def _resolver_wrapper(tmp_path) -> str:
    """A Chromium executable whose /etc/resolv.conf names the DNS stub (a private mount namespace, root only)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    wrapper = tmp_path / "chromium-with-stub-dns"
    wrapper.write_text(
        '#!/bin/sh\nexec unshare --mount -- sh -c \'mount --bind "$0" /etc/resolv.conf && exec "$1" "$@"\' '
        f'{resolv} {find_chromium()} "$@"\n'
    )
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot give Chromium a private resolv.conf here: {probe.stderr.strip()[:200]}")
    return str(wrapper)


def test_listeners_catch_an_unfenced_browser(listeners, tmp_path):
    """The leak test can fail: the same page in a plain Playwright Chromium reaches the listeners and the DNS stub."""
    from playwright.sync_api import sync_playwright

    executable = _resolver_wrapper(tmp_path) if listeners.dns is not None else find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_content(listeners.hostile_page())
        tab.wait_for_timeout(2500)
        browser.close()
    time.sleep(0.5)
    kinds = {contact.split(" from ")[0] for contact in listeners.contacts}
    assert "tcp 127.0.0.1" in kinds and "udp 127.0.0.1" in kinds, listeners.contacts
    if listeners.host:
        assert f"tcp {listeners.host}" in kinds, listeners.contacts
    if listeners.dns is not None:
        assert "dns" in kinds, listeners.contacts


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", ["namespace", "flags"])
def test_nothing_leaves_the_browser(listeners, tmp_path, monkeypatch, sandbox):
    if sandbox == "flags":
        monkeypatch.setenv("TRL_EXT_NETWORK_SANDBOX", "0")
    executable = _resolver_wrapper(tmp_path) if listeners.dns is not None else None
    with BrowserPool(size=1, page_timeout=10.0, settle_ms=2500, executable_path=executable) as fenced:
        result = fenced.render(listeners.hostile_page())
        isolation = fenced.network_isolation
        if sandbox == "namespace":
            if not isolation.startswith("namespace"):
                pytest.skip("no network namespace on this machine")
            # Structurally: the browser's network namespace has no interface but a loopback.
            pid = next(iter(fenced._browser_pids))
            children = _descendants(pid, lambda command: "chromium" in command)
            with open(f"/proc/{children[0]}/net/dev") as f:
                interfaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
            assert interfaces == {"lo"}, interfaces
        else:
            assert isolation == "flags"
    time.sleep(0.5)
    assert result.ok, result
    assert listeners.contacts == [], sorted(set(c.split(" from ")[0] for c in listeners.contacts))


# ----------------------------------------------------------------------------------------------------------------
# CPU starvation (busy processes this test starts and kills): slowness is never blamed on the page.
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cpu_starvation_is_not_blamed_on_innocent_pages():
    pages = [html.replace("</h1>", f" {i}</h1>") for i, html in enumerate(INNOCENT * 3)]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        with BrowserPool(size=2, page_timeout=1.5, settle_ms=100) as starved:
            reward = AgenticAestheticReward(pool=starved, interactive=False, max_infrastructure_failure_rate=None)
            evaluations = reward.evaluate([PROMPT] * len(pages), pages)
            stats = starved.stats
    finally:
        for process in busy:
            process.kill()
            process.wait()
    # The starvation bit: some first renders timed out (they were retried alone, or the machine was blamed).
    assert stats.failures["page_timeout"] >= 1, stats
    page_faults = {"page_timeout", "page_crashed", "page_error", "page_memory", "runtime_errors"}
    for evaluation in evaluations:
        assert not page_faults & set(evaluation.failures), evaluation.failures
        total = evaluation.total(reward.weights)
        assert total is None or total > 0.4, evaluation.failures
