"""AesCoder's agentic reward: gating, weights, one render per completion, failure accounting, and the trainer."""

import json
import pickle

import pytest

from trl_ext.rewards.agentic import AgenticAestheticReward, instruction_text
from trl_ext.web import BrowserPool, PageJudge, PageScore, chromium_available
from trl_ext.web.lint import extract_html

HAVE_CHROMIUM = chromium_available()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium: `apt-get install chromium` (make installs it)"),
]


def page(body: str, title: str = "Counter") -> str:
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n</head>\n<body>\n{body}\n</body>\n</html>'


WORKING = page(
    '<h1>Counter</h1>\n<p id="count">0</p>\n'
    "<button onclick=\"const c = document.getElementById('count'); c.textContent = Number(c.textContent) + 1; "
    "document.body.style.background = '#ffd';\">Add one</button>"
)
DEAD = page("<h1>Counter</h1>\n<p>0</p>\n<button>Add one</button>")
CRASHING = page("<h1>Counter</h1>\n<script>missingFunction()</script>")
UNLINTED = "<html><body><DIV>no doctype, no title</body></html>"
PROMPT = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "A counter page with a button"}]


def fenced(html: str) -> list[dict]:
    return [{"role": "assistant", "content": f"Here you go:\n```html\n{html}\n```"}]


class FixedJudge(PageJudge):
    """Returns a fixed score (or None) and counts its calls."""

    def __init__(self, score):
        self.value = score
        self.calls = 0

    async def score_page(self, instruction, render):
        self.calls += 1
        return self.value


@pytest.fixture(scope="module")
def pool():
    with BrowserPool(size=2, page_timeout=8.0, settle_ms=100) as pool:
        yield pool


def test_instruction_text():
    assert instruction_text(PROMPT) == "A counter page with a button"
    assert instruction_text("plain") == "plain"


def test_terms_gating_and_weights(pool):
    judge = FixedJudge(PageScore(30, 20, 10))
    reward = AgenticAestheticReward(page_judge=judge, pool=pool, agent_time_budget=15)
    completions = [fenced(WORKING), fenced(DEAD), fenced(CRASHING), fenced(UNLINTED)]
    prompts = [PROMPT] * 4
    execution = reward.execution(prompts=prompts, completions=completions)
    static = reward.static(prompts=prompts, completions=completions)
    interactive = reward.interactive_reward(prompts=prompts, completions=completions)
    combined = reward.combined(prompts=prompts, completions=completions)
    assert execution == [1.0, 1.0, -1.0, -1.0]  # a JS error fails execution; so does the lint
    assert static == [0.6, 0.6, 0.6, 0.0]  # the lint failure gates the aesthetic terms
    assert interactive == [pytest.approx(1 / 3), 0.0, 0.0, 0.0]
    expected = [0.1 * e + 0.8 * s + 0.1 * i for e, s, i in zip(execution, static, interactive)]
    assert combined == pytest.approx(expected)
    assert judge.calls == 3  # the unlinted page never reached the judge
    failures = [e.failures for e in reward.evaluate(prompts, completions)]
    assert failures == [(), (), ("runtime_errors",), ("lint_failed",)]


def test_one_render_per_completion_shared_by_the_callables(pool):
    reward = AgenticAestheticReward(pool=pool, interactive=False)
    before = pool.stats.pages
    completions = [fenced(WORKING), fenced(DEAD), fenced(WORKING)]  # two identical completions: one render
    for func in reward.reward_funcs + [reward.combined]:
        func(prompts=[PROMPT] * 3, completions=completions)
    assert pool.stats.pages - before == 2


def test_lint_gate_off_scores_unlinted_pages(pool):
    reward = AgenticAestheticReward(page_judge=FixedJudge(PageScore(10, 10, 10)), pool=pool, lint_gate=False)
    assert reward.static(prompts=["x"], completions=[UNLINTED]) == [0.3]
    assert reward.execution(prompts=["x"], completions=[UNLINTED]) == [-1.0]


def test_judge_failure_gives_none_and_is_counted_and_logged(pool):
    reward = AgenticAestheticReward(page_judge=FixedJudge(None), pool=pool, interactive=False)
    logged = {}
    rewards = reward.static(
        prompts=["x"], completions=[fenced(WORKING)], log_metric=lambda k, v: logged.setdefault(k, v)
    )
    assert rewards == [None]
    assert reward.counters["judge_failed"] == 1
    assert logged["aesthetic/failures/judge_failed"] == 1.0 and logged["aesthetic/failures/lint_failed"] == 0.0
    assert reward.combined(prompts=["x"], completions=[fenced(WORKING)]) == [None]


def test_page_timeout_scores_low_not_none(pool):
    reward = AgenticAestheticReward(pool=pool, interactive=False)
    hanging = page("<p>spin</p><script>while (true) {}</script>")
    evaluation = reward.evaluate(["x"], [hanging])[0]
    assert evaluation.failures == ("page_timeout",)
    assert (evaluation.execution, evaluation.static, evaluation.interactive) == (-1.0, 0.0, 0.0)


def test_screenshots_of_best_and_worst_are_kept(pool, tmp_path):
    class State:
        global_step = 7

    reward = AgenticAestheticReward(pool=pool, interactive=False, screenshot_dir=str(tmp_path))
    reward.combined(prompts=["A counter"] * 2, completions=[WORKING, CRASHING], trainer_state=State())
    assert set(reward.last_screenshots) == {"best", "worst"}
    assert (tmp_path / "step_000007_best.png").read_bytes()[:4] == b"\x89PNG"
    best = json.loads((tmp_path / "step_000007_best.json").read_text())
    worst = json.loads((tmp_path / "step_000007_worst.json").read_text())
    assert best["reward"] > worst["reward"] and worst["failures"] == ["runtime_errors"]
    # Each page comes with its HTML, named in its record.
    assert best["html"] == "step_000007_best.html" and best["screenshot"] == "step_000007_best.png"
    assert (tmp_path / best["html"]).read_text() == extract_html(WORKING) == reward.last_pages["best"]["html"]


def test_bad_input():
    with pytest.raises(ValueError, match="weights"):
        AgenticAestheticReward(weights=(0.1, 0.9))
    reward = AgenticAestheticReward()
    with pytest.raises(ValueError, match="pair up"):
        reward.evaluate(["a", "b"], ["only one"])


def test_real_pool_is_created_lazily_and_closed():
    reward = AgenticAestheticReward(pool_size=1, interactive=False)
    assert reward._pool is None
    assert reward.execution(prompts=["x"], completions=[WORKING]) == [1.0]
    pool = reward._pool
    reward.close()
    assert reward._pool is None and pool._closed
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(pool)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_preflight_names_the_dead_judge_endpoint(pool):
    from trl_ext.web.vlm_judge import VLMPageJudge

    judge = VLMPageJudge.from_endpoint(
        f"http://127.0.0.1:{_closed_port()}/v1", "judge", api_key="x", client_kwargs={"max_retries": 0, "timeout": 2}
    )
    reward = AgenticAestheticReward(page_judge=judge, pool=pool, interactive=False)
    with pytest.raises(RuntimeError, match="judge_base_url"):
        reward.preflight()
    AgenticAestheticReward(pool=pool, interactive=False).preflight()  # the offline judge and the browser are fine


def test_training_stops_when_infrastructure_failures_pass_the_threshold(pool):
    from trl_ext.rewards.agentic import RewardInfrastructureError

    class FlakyJudge(PageJudge):
        """Fails on the pages whose text says so (an endpoint failing for a share of the requests)."""

        async def score_page(self, instruction, render):
            return None if "fail" in render.metrics.get("text_sample", "") else PageScore(20, 20, 20)

    def pages(failing: int) -> list[str]:
        return [page(f"<h1>Counter {i}</h1><p>{'fail' if i < failing else 'fine'}</p>") for i in range(4)]

    # One lost static term in 8 completions (12.5%) is under the 20% limit.
    lenient = AgenticAestheticReward(page_judge=FlakyJudge(), pool=pool, interactive=False)
    lenient.static(prompts=["step 0"] * 4, completions=pages(1))
    lenient.static(prompts=["step 1"] * 4, completions=pages(0))
    # Two in four: the run stops at the end of the window instead of training on the execution term alone.
    failing = pages(2)
    strict = AgenticAestheticReward(page_judge=FlakyJudge(), pool=pool, interactive=False)
    assert strict.static(prompts=["step 0"] * 4, completions=failing).count(None) == 2  # window not full yet
    with pytest.raises(RewardInfrastructureError, match="static term"):
        strict.static(prompts=["step 1"] * 4, completions=failing)
    off = AgenticAestheticReward(
        page_judge=FlakyJudge(), pool=pool, interactive=False, max_infrastructure_failure_rate=None
    )
    for step in range(3):
        off.static(prompts=[f"step {step}"] * 4, completions=failing)
