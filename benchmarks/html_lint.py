"""
Parity and speed of `trl_ext.web.lint.lint_html` (HTMLHint's default ruleset in Python) against the real `htmlhint`
CLI from npm, on the crafted pages of tests/test_web_lint.py and on HTML documents found on this machine.

    python benchmarks/html_lint.py [--htmlhint-dir DIR] [--max-files 200] [--roots DIR ...] [--no-install]

htmlhint is installed on first use with `npm install --prefix DIR htmlhint@<pinned>` (DIR defaults to
$TRL_EXT_HTMLHINT_DIR, else ~/.cache/trl_ext/htmlhint). Prints the agreement on pass/fail, on the sets of
(rule, line) and on the exact messages, and the time per file of: `lint_html`, one htmlhint process per file (on an
evenly spread sample: node's start-up dominates), and one htmlhint process for the whole batch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from trl_ext.web.lint import DEFAULT_RULES, HTMLHINT_VERSION, lint_html

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = "~/.cache/trl_ext/htmlhint"


def ensure_htmlhint(directory: Path, install: bool) -> Path:
    """Path of the `htmlhint` executable in `directory`, installed with npm (pinned version) if missing."""
    executable = directory / "node_modules" / ".bin" / "htmlhint"
    package = directory / "node_modules" / "htmlhint" / "package.json"
    installed = json.loads(package.read_text())["version"] if package.exists() else None
    if installed != HTMLHINT_VERSION:
        if not install:
            sys.exit(
                f"htmlhint {HTMLHINT_VERSION} is not installed in {directory} (found: {installed}); drop --no-install"
            )
        if shutil.which("npm") is None:
            sys.exit("npm is not on PATH: install Node.js (>= 18) to compare with htmlhint")
        command = [
            "npm",
            "install",
            "--prefix",
            str(directory),
            f"htmlhint@{HTMLHINT_VERSION}",
            "--no-audit",
            "--no-fund",
        ]
        print("installing:", " ".join(command), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    if shutil.which("node") is None:
        sys.exit("node is not on PATH")
    return executable


def load_crafted_pages() -> dict[str, str]:
    """The crafted pages of the test suite (one source for the tests and this benchmark)."""
    spec = importlib.util.spec_from_file_location("_web_lint_cases", REPO / "tests" / "test_web_lint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f"crafted/{name}": html for name, (html, _) in module.CASES.items()}


def find_documents(roots: list[Path], max_files: int, max_bytes: int) -> dict[str, str]:
    """
    Up to `max_files` distinct HTML documents under `roots`, spread over the roots by hashing their paths (a stable
    pseudo-random sample). Documents with htmlhint configuration comments are left out: the CLI shares one ruleset
    between the files of a batch and such comments change it, so batch results would depend on the file order.
    """
    candidates: list[Path] = []
    for root in roots:
        for dirpath, _, filenames in os.walk(root):
            candidates.extend(Path(dirpath) / name for name in filenames if name.endswith((".html", ".htm")))
    candidates.sort(key=lambda path: hashlib.sha1(str(path).encode()).hexdigest())
    documents: dict[str, str] = {}
    seen: set[str] = set()
    for path in candidates:
        if len(documents) >= max_files:
            break
        try:
            if path.is_symlink() or not 0 < path.stat().st_size <= max_bytes:
                continue
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest in seen or "htmlhint" in text.lower():
            continue
        seen.add(digest)
        documents[str(path)] = text
    return documents


def run_htmlhint(executable: Path, workdir: Path, targets: list[str]) -> dict[str, list[tuple]]:
    """Messages per file name, from one CLI run with the default ruleset and the JSON formatter."""
    config = workdir / "htmlhintrc.json"
    if not config.exists():
        config.write_text(json.dumps(dict.fromkeys(DEFAULT_RULES, True)))
    output = workdir / "report.json"
    # Into a file, not a pipe: the CLI calls process.exit() right after printing, which cuts piped output at 64 KiB.
    with output.open("w") as stdout:
        run = subprocess.run(
            [str(executable), "--config", str(config), "--format", "json", *targets],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
    if run.returncode not in (0, 1):
        raise RuntimeError(f"htmlhint failed ({run.returncode}): {run.stderr[-2000:]}")
    return {
        Path(entry["file"]).name: [(m["rule"]["id"], m["line"], m["col"], m["message"]) for m in entry["messages"]]
        for entry in json.loads(output.read_text())
    }


def agreement(ours: list[tuple], theirs: list[tuple]) -> tuple[bool, bool, bool]:
    """(same pass/fail, same set of (rule, line), same messages in the same order)."""
    return (
        (not ours) == (not theirs),
        {m[:2] for m in ours} == {m[:2] for m in theirs},
        ours == theirs,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--htmlhint-dir",
        default=os.environ.get("TRL_EXT_HTMLHINT_DIR", DEFAULT_DIR),
        help="npm prefix of htmlhint (default: $TRL_EXT_HTMLHINT_DIR or %(default)s)",
    )
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing htmlhint")
    parser.add_argument("--max-files", type=int, default=200, help="real documents to sample")
    parser.add_argument("--max-bytes", type=int, default=1_000_000, help="skip larger documents")
    parser.add_argument(
        "--roots",
        nargs="*",
        type=Path,
        default=[Path("/usr/share/doc"), Path(sysconfig.get_paths()["purelib"])],
        help="where to look for *.html documents (default: /usr/share/doc and this environment's site-packages)",
    )
    parser.add_argument(
        "--per-file",
        type=int,
        default=40,
        help="files (evenly spread) also linted by one htmlhint process each; node's start-up dominates, so a sample",
    )
    parser.add_argument("--show", type=int, default=5, help="disagreements to print")
    args = parser.parse_args()

    executable = ensure_htmlhint(Path(args.htmlhint_dir).expanduser(), install=not args.no_install)
    crafted = load_crafted_pages()
    real = find_documents([root for root in args.roots if root.is_dir()], args.max_files, args.max_bytes)
    corpus = {**crafted, **real}
    names = {source: f"{index:04d}.html" for index, source in enumerate(corpus)}
    size = sum(len(text) for text in corpus.values())
    print(
        f"htmlhint {HTMLHINT_VERSION} ({executable}), node {subprocess.check_output(['node', '--version'], text=True).strip()}"
    )
    print(f"corpus: {len(crafted)} crafted pages + {len(real)} documents from {[str(r) for r in args.roots]}")
    print(f"        {size / 1e6:.1f} M characters, largest {max(len(t) for t in corpus.values()) / 1e3:.0f} k")

    with tempfile.TemporaryDirectory(prefix="html_lint_") as tmp:
        workdir = Path(tmp)
        pages = workdir / "pages"
        pages.mkdir()
        for source, text in corpus.items():
            (pages / names[source]).write_text(text, encoding="utf-8", errors="surrogatepass", newline="")

        lint_html(next(iter(corpus.values())))  # warm-up (imports, regex compilation)
        ours, ours_time = {}, {}
        for source, text in corpus.items():
            start = time.perf_counter()
            result = lint_html(text, max_messages=None)
            ours_time[source] = time.perf_counter() - start
            ours[source] = [(m.rule, m.line, m.col, m.message) for m in result.messages]

        start = time.perf_counter()
        found = run_htmlhint(executable, workdir, [str(pages)])
        batch_time = time.perf_counter() - start
        batch = {source: found.get(names[source], []) for source in corpus}

        sources = list(corpus)
        step = max(1, len(sources) // max(1, args.per_file))
        per_file, per_file_time = {}, {}
        for source in sources[::step][: args.per_file]:
            start = time.perf_counter()
            found = run_htmlhint(executable, workdir, [str(pages / names[source])])
            per_file_time[source] = time.perf_counter() - start
            per_file[source] = found.get(names[source], [])

    print()
    print(
        f"{'':<36}{'files':>6}{'htmlhint passes':>17}{'pass/fail agree':>17}{'(rule,line) sets':>18}{'exact msgs':>12}"
    )
    groups = {
        "ours vs htmlhint batch, crafted": (list(crafted), batch),
        "ours vs htmlhint batch, documents": (list(real), batch),
        "ours vs htmlhint batch, all": (list(corpus), batch),
        "ours vs htmlhint per file (sample)": (list(per_file), per_file),
    }
    for label, (sources, reference) in groups.items():
        if not sources:
            continue
        scores = [agreement(ours[s], reference[s]) for s in sources]
        passes = sum(not reference[s] for s in sources)
        row = [100 * sum(score[i] for score in scores) / len(sources) for i in range(3)]
        print(f"{label:<36}{len(sources):>6}{passes:>17}{row[0]:>16.1f}%{row[1]:>17.1f}%{row[2]:>11.1f}%")
    consistent = 100 * sum(per_file[s] == batch[s] for s in per_file) / len(per_file)
    print(f"{'htmlhint per file vs batch':<36}{len(per_file):>6}{'':>52}{consistent:>11.1f}%")

    print()
    ours_ms = [1e3 * t for t in ours_time.values()]
    cli_ms = [1e3 * t for t in per_file_time.values()]
    sample_ms = [1e3 * ours_time[s] for s in per_file]
    print(f"{'time per file':<44}{'files':>6}{'mean ms':>10}{'median ms':>11}{'max ms':>10}")
    for label, values in (
        ("python lint_html", ours_ms),
        ("python lint_html, per-file sample", sample_ms),
        ("htmlhint, one process per file (sample)", cli_ms),
    ):
        print(
            f"{label:<44}{len(values):>6}{statistics.mean(values):>10.2f}{statistics.median(values):>11.2f}"
            f"{max(values):>10.1f}"
        )
    print(f"{'htmlhint, one process for the whole batch':<44}{len(corpus):>6}{1e3 * batch_time / len(corpus):>10.2f}")
    print(f"(totals: python {sum(ours_time.values()):.2f} s, htmlhint batch {batch_time:.2f} s)")

    shown = 0
    for source in corpus:
        if ours[source] != batch[source] and shown < args.show:
            shown += 1
            only_ours = [m for m in ours[source] if m not in batch[source]]
            only_theirs = [m for m in batch[source] if m not in ours[source]]
            print(f"\nDISAGREEMENT {source}\n  only ours:     {only_ours[:3]}\n  only htmlhint: {only_theirs[:3]}")


if __name__ == "__main__":
    main()
