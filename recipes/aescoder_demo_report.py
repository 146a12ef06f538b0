"""
What `make demo` ends with: did the AesCoder GRPO run learn?

Reads the log history of a run of `recipes/aescoder_grpo.py` (`<run>/trainer_state.json`) and the best pages it wrote
(`<run>/screenshots/step_<global step>_best.{png,html,json}`), then writes to `<run>/demo_report/`:

- `rewards.md`: the reward and each of its terms (execution, static, interactive) and the lint pass rate, step by
  step for the first and last `--window` steps, with their means (also printed);
- `rewards.png`: the same against the step, for every step;
- `contact_sheet.png`: the best and the worst page of each of the first and of the last `--window` steps, one row
  each (a page that failed lint has no screenshot from training: it is rendered here, in Chromium, from its HTML);
- `summary.json`: the means of the first and last steps, and the margin of the reward.

    python recipes/aescoder_demo_report.py outputs/demo/grpo --window 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

# Log keys of TRL's GRPOTrainer / the agentic reward, and how the report names them.
COLUMNS = {
    "reward": "reward",
    "rewards/aesthetic_execution/mean": "execution",
    "rewards/aesthetic_static/mean": "static",
    "rewards/aesthetic_interactive/mean": "interactive",
    "aesthetic/lint_pass_rate": "lint pass rate",
}
TILE = (320, 200)


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """The training log entries of a run (one per logging step), from `<run_dir>/trainer_state.json`."""
    path = Path(run_dir) / "trainer_state.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run recipes/aescoder_grpo.py with --output_dir {run_dir} first.")
    history = [entry for entry in json.loads(path.read_text())["log_history"] if "reward" in entry]
    if not history:
        raise ValueError(f"{path} has no reward in its log history (was `logging_steps` larger than `max_steps`?).")
    return history


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def summarize(history: list[dict], window: int) -> dict:
    """Means of every column over the first and the last `window` logged steps, and their difference."""
    window = max(1, min(window, len(history) // 2 or 1))
    first, last = history[:window], history[-window:]
    summary = {
        "window": window,
        "first_steps": [entry["step"] for entry in first],
        "last_steps": [entry["step"] for entry in last],
    }
    for key, name in COLUMNS.items():
        before, after = _mean([e.get(key) for e in first]), _mean([e.get(key) for e in last])
        summary[name] = {"first": before, "last": after, "change": after - before}
    summary["margin"] = summary["reward"]["change"]
    return summary


def markdown_table(history: list[dict], summary: dict) -> str:
    """The first and last steps, then the two means and the change, one column per term."""
    header = "| step | " + " | ".join(COLUMNS.values()) + " |"
    lines = [header, "|" + "---:|" * (len(COLUMNS) + 1)]

    def row(label, values):
        return f"| {label} | " + " | ".join("" if v is None else f"{v:+.3f}" for v in values) + " |"

    by_step = {entry["step"]: entry for entry in history}
    first, last = summary["first_steps"], summary["last_steps"]
    lines += [row(step, [by_step[step].get(key) for key in COLUMNS]) for step in first]
    if last[0] > first[-1] + 1:
        lines.append("| ... |" + " |" * len(COLUMNS))
    lines += [row(step, [by_step[step].get(key) for key in COLUMNS]) for step in last if step > first[-1]]
    names = list(COLUMNS.values())
    lines.append(row(f"**mean, steps {first[0]}-{first[-1]}**", [summary[n]["first"] for n in names]))
    lines.append(row(f"**mean, steps {last[0]}-{last[-1]}**", [summary[n]["last"] for n in names]))
    lines.append(row("**change**", [summary[n]["change"] for n in names]))
    return "\n".join(lines)


def plot_rewards(history: list[dict], path: str | os.PathLike) -> None:
    """The reward, its three terms and the lint pass rate against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in history]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    styles = {"reward": dict(color="black", linewidth=2.5), "lint pass rate": dict(color="grey", linestyle="--")}
    for key, name in COLUMNS.items():
        values = [entry.get(key) for entry in history]
        if any(v is not None for v in values):
            ax.plot(steps, [float("nan") if v is None else v for v in values], label=name, **styles.get(name, {}))
    ax.axhline(0, color="lightgrey", linewidth=0.8)
    ax.set(xlabel="GRPO step", ylabel="mean over the batch", title="AesCoder GRPO (make demo): reward per term")
    ax.legend(loc="best", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pages(screenshot_dir: Path, steps: list[int], which: str) -> list[dict]:
    pages = []
    for step in steps:
        record_path = screenshot_dir / f"step_{step:06d}_{which}.json"
        if record_path.exists():
            record = json.loads(record_path.read_text())
            record["html_text"] = (screenshot_dir / record["html"]).read_text(encoding="utf-8")
            png = screenshot_dir / record["screenshot"] if record.get("screenshot") else None
            record["png"] = png.read_bytes() if png is not None and png.exists() else None
            pages.append(record)
    return pages


def contact_sheet(screenshot_dir: str | os.PathLike, summary: dict, path: str | os.PathLike) -> int:
    """
    The best and the worst page of each of the first and of the last steps, in four rows, each with its step, reward
    and lint result (the rules it broke). Pages without a screenshot (stopped by the lint gate) are rendered from their
    HTML. Returns the number of tiles.
    """
    from PIL import Image, ImageDraw

    screenshot_dir = Path(screenshot_dir)
    rows = [
        (f"{when} steps:\n{which}", _pages(screenshot_dir, summary[f"{when}_steps"], which))
        for when in ("first", "last")
        for which in ("best", "worst")
    ]
    missing = [page for _, pages in rows for page in pages if page["png"] is None]
    if missing:
        from trl_ext.web import BrowserPool

        with BrowserPool(size=1, page_timeout=10.0, mobile_viewport=None) as pool:
            for page, result in zip(missing, pool.render_many([p["html_text"] for p in missing], measure=False)):
                page["png"] = None if isinstance(result, BaseException) or not result.ok else result.screenshot

    columns = max(1, max(len(pages) for _, pages in rows))
    label_width, caption = 110, 34
    width, height = label_width + columns * (TILE[0] + 10), len(rows) * (TILE[1] + caption + 10) + 10
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    tiles = 0
    for r, (label, pages) in enumerate(rows):
        top = 10 + r * (TILE[1] + caption + 10)
        draw.multiline_text((8, top + TILE[1] // 2), label, fill="black")
        for c, page in enumerate(pages):
            left = label_width + c * (TILE[0] + 10)
            if page["png"]:
                image = Image.open(io.BytesIO(page["png"])).convert("RGB")
                scale = TILE[0] / image.width
                image = image.resize((TILE[0], max(1, round(image.height * scale))))
                sheet.paste(image.crop((0, 0, TILE[0], min(TILE[1], image.height))), (left, top))
            draw.rectangle((left, top, left + TILE[0] - 1, top + TILE[1] - 1), outline="grey")
            broken = sorted({message.split("@")[0] for message in page.get("lint") or []})
            lint = "lint ok" if page.get("lint_passed") else "lint FAILED: " + ", ".join(broken)
            draw.text(
                (left, top + TILE[1] + 4), f"step {page['step']}  reward {page['reward']:+.3f}  {lint}", fill="black"
            )
            draw.text((left, top + TILE[1] + 18), page["instruction"][:52], fill="dimgrey")
            tiles += 1
    sheet.save(path)
    return tiles


def report(run_dir: str | os.PathLike, window: int = 5) -> dict:
    """Write `<run_dir>/demo_report/` (table, plot, contact sheet, summary) and return the summary."""
    run_dir = Path(run_dir)
    out = run_dir / "demo_report"
    out.mkdir(parents=True, exist_ok=True)
    history = read_history(run_dir)
    summary = summarize(history, window)
    table = markdown_table(history, summary)
    (out / "rewards.md").write_text(table + "\n")
    plot_rewards(history, out / "rewards.png")
    summary["contact_sheet_tiles"] = contact_sheet(run_dir / "screenshots", summary, out / "contact_sheet.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    first, last = summary["first_steps"], summary["last_steps"]
    print(table)
    print(
        f"\nReward, mean of steps {first[0]}-{first[-1]}: {summary['reward']['first']:+.3f}; of steps "
        f"{last[0]}-{last[-1]}: {summary['reward']['last']:+.3f} ({summary['margin']:+.3f}). Lint pass rate "
        f"{summary['lint pass rate']['first']:.0%} -> {summary['lint pass rate']['last']:.0%}."
    )
    print(f"Table, plot (rewards.png) and before/after contact sheet (contact_sheet.png): {out}/")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="output_dir of a recipes/aescoder_grpo.py run")
    parser.add_argument("--window", type=int, default=5, help="first and last steps compared (default 5)")
    args = parser.parse_args(argv)
    report(args.run_dir, args.window)


if __name__ == "__main__":
    main()
