"""
AesCoder's agentic reward for generated web pages (arXiv 2510.23272): an execution agent (lint + runtime errors), a
static aesthetics agent (a judge scoring the rendered screenshot) and an interactive agent (a GUI agent trying the
page), combined as `0.1 * execution + 0.8 * static + 0.1 * interactive`.

All three signals come from one page load per completion, shared by the three reward callables of a step.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import io
import json
import logging
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..web.agent import AGENT_VIEWPORT, InteractionReport, InteractiveAgent
from ..web.browser import CONTROL_PAGE, BrowserCrashedError, BrowserPool, InfrastructureError
from ..web.design_judge import DesignJudge, HeuristicInteractionJudge
from ..web.judge import InteractionJudge, PageJudge
from ..web.lint import LintResult, extract_html, lint_html
from ..web.types import PageScore, RenderResult
from .code import completion_text

logger = logging.getLogger(__name__)

# AesCoder's weights of the execution, static and interactive terms.
PAPER_WEIGHTS = (0.1, 0.8, 0.1)

# Failure kinds, the suffix of the `aesthetic/failures/<kind>` metrics. `lint_failed`, `runtime_errors` and
# `page_*` are the page's fault (they score low); `browser_failed` (the browser died twice), `machine_slow` (the page
# timed out again alone while a control page lagged too), `deadline_exceeded` (the per-completion deadline passed),
# `judge_failed` and `agent_failed` are infrastructure failures (the affected terms are `None`, so TRL leaves them
# out); `agent_timeout` keeps the interactions graded before the budget ran out.
FAILURE_KINDS = (
    "lint_failed",
    "runtime_errors",
    "page_timeout",
    "page_crashed",
    "page_error",
    "page_memory",
    "browser_failed",
    "machine_slow",
    "deadline_exceeded",
    "judge_failed",
    "agent_failed",
    "agent_timeout",
)
TERMS = ("execution", "static", "interactive")


class RewardInfrastructureError(RuntimeError):
    """Too many completions of recent steps got no reward term because the machine or a judge failed."""


@dataclass
class AestheticEvaluation:
    """
    Everything the three agents found about one completion.

    Args:
        html (`str`): The extracted document.
        lint ([`~trl_ext.web.lint.LintResult`]): The execution agent's lint.
        render ([`~trl_ext.web.RenderResult`], *optional*): The render (`None` when lint gated it).
        page_score ([`~trl_ext.web.PageScore`], *optional*): The static judge's score.
        interaction ([`~trl_ext.web.agent.InteractionReport`], *optional*): The interactive agent's report.
        execution (`float`): `+1.0` when the page lints clean (and, with `check_runtime`, loads without JavaScript
            errors or failed resources), else `-1.0`; `None` on a browser failure.
        static (`float`, *optional*): Static score / 100, in [0, 1].
        interactive (`float`, *optional*): Graded successes / `max_graded`, in [0, 1].
        failures (`list[str]`): Failure kinds met (see `FAILURE_KINDS`).
    """

    html: str
    lint: LintResult
    render: RenderResult | None = None
    page_score: PageScore | None = None
    interaction: InteractionReport | None = None
    execution: float | None = -1.0
    static: float | None = 0.0
    interactive: float | None = 0.0
    failures: tuple[str, ...] = ()

    def total(self, weights: Sequence[float] = PAPER_WEIGHTS) -> float | None:
        """Weighted sum of the three terms, `None` if any term is unknown."""
        terms = (self.execution, self.static, self.interactive)
        if any(t is None for t in terms):
            return None
        return float(sum(w * t for w, t in zip(weights, terms)))


def instruction_text(prompt: str | list[dict[str, Any]]) -> str:
    """The user's request: the prompt itself, or the last user message of a conversational prompt."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


class AgenticAestheticReward:
    """
    AesCoder's agentic reward as TRL reward callables.

    Per completion: extract the HTML, lint it (HTMLHint's default rules; a failure gates the two aesthetic terms to
    zero, as in the paper), render it once in a [`~trl_ext.web.BrowserPool`], score the screenshot with `page_judge`
    and, in the same open page, let an [`~trl_ext.web.agent.InteractiveAgent`] try up to `max_actions`
    interactions, `max_graded` of them graded. Completions are evaluated concurrently (at most `max_concurrency`
    pages at once) and cached, so the three callables of [`~AgenticAestheticReward.reward_funcs`] share one
    evaluation per completion.

    Terms: execution `+1`/`-1`; static = rubric total / 100; interactive = successes / `max_graded`. Use
    `reward_funcs` with `GRPOConfig(reward_weights=list(reward.weights))` (three columns in TRL's logs), or the single
    `combined` callable. Page faults (lint, JavaScript errors, timeouts, crashes) score low; infrastructure faults
    (browser died twice, judge or planner failed after retries) give `None`, which TRL leaves out. Each kind is
    counted in `counters` and logged as `aesthetic/failures/<kind>`; the means of the rubric parts are logged as
    `aesthetic/alignment`, `aesthetic/aesthetics`, `aesthetic/structure`. The best and worst page of each batch are
    kept in `last_pages` (HTML, screenshot when rendered, terms; `last_screenshots` holds the screenshots alone) and
    written to `screenshot_dir` if given ([`~AgenticAestheticReward.write_pages`]).

    Args:
        page_judge ([`~trl_ext.web.PageJudge`], *optional*):
            Static judge; defaults to the offline [`~trl_ext.web.design_judge.DesignJudge`].
        interaction_judge ([`~trl_ext.web.InteractionJudge`], *optional*):
            Planner/grader of the interactive agent; defaults to the offline
            [`~trl_ext.web.design_judge.HeuristicInteractionJudge`].
        pool ([`~trl_ext.web.BrowserPool`], *optional*):
            Browser pool; created on first use (with `pool_size`, `page_timeout` and `router`) and closed at exit.
        weights (`Sequence[float]`, *optional*, defaults to `(0.1, 0.8, 0.1)`):
            Weights of execution, static and interactive, used by `combined` and `total`.
        lint_gate (`bool`, *optional*, defaults to `True`):
            Skip the aesthetic agents (terms 0) when the lint fails.
        check_runtime (`bool`, *optional*, defaults to `True`):
            Also fail the execution term on uncaught JavaScript errors and failed resource loads during page load.
        interactive (`bool`, *optional*, defaults to `True`):
            Run the interactive agent (otherwise its term is 0).
        max_actions (`int`, *optional*, defaults to `5`), max_graded (`int`, *optional*, defaults to `3`),
        agent_time_budget (`float`, *optional*, defaults to `30.0`), agent_viewport (`tuple`, defaults to `(1920, 1200)`):
            Interactive agent settings (see [`~trl_ext.web.agent.InteractiveAgent`]).
        max_concurrency (`int`, *optional*):
            Completions evaluated at once; defaults to the pool's size.
        pool_size (`int`, *optional*, defaults to `4`), page_timeout (`float`, *optional*, defaults to `20.0`),
        router (`Callable`, *optional*):
            Settings of the pool created when `pool` is not given (`router`: e.g. a
            [`~trl_ext.web.vendor.CDNRouter`], which serves local copies of CDN libraries).
        screenshot_dir (`str`, *optional*):
            Folder where the best and worst page of each batch are written (`step_000010_best.png`, `.html` and
            `.json`), named by the `global_step` of the `trainer_state` TRL passes (the step being computed).
            [`~trl_ext.AesCoderGRPOTrainer`] takes this folder over and writes the pages itself, every
            `screenshot_logging_steps`, named by the step TensorBoard logs them at.
        cache_size (`int`, *optional*, defaults to `4096`):
            Evaluations kept for reuse across the callables.
        completion_timeout (`float`, *optional*):
            Deadline in seconds for one completion's whole evaluation (render with its lone retry, phone check, GUI
            agent, judge), counted from when it gets a browser; past it every term is `None` (`deadline_exceeded`)
            and its browser is replaced. Defaults to the pool's worst case plus `judge_timeout`.
        judge_timeout (`float`, *optional*, defaults to `120.0`):
            Seconds the static judge may take on one page (it bounds its own retries; this is the backstop).
        max_infrastructure_failure_rate (`float`, *optional*, defaults to `0.2`), failure_window (`int`, *optional*,
        defaults to `2`):
            If more than this share of the completions of the last `failure_window` batches lost a term to an
            infrastructure failure, [`RewardInfrastructureError`] is raised (training stops) instead of training on
            the remaining terms alone. `None` turns the check off.

    Example:

    ```python
    >>> from trl_ext.rewards.agentic import AgenticAestheticReward
    >>> reward = AgenticAestheticReward(pool_size=1)
    >>> page = "```html\\n<!DOCTYPE html><html><head><title>Hi</title></head><body><h1>Hello</h1></body></html>\\n```"
    >>> reward.combined(prompts=["A hello page"], completions=[page])[0] > 0
    True
    >>> reward.close()
    ```
    """

    def __init__(
        self,
        page_judge: PageJudge | None = None,
        interaction_judge: InteractionJudge | None = None,
        pool: BrowserPool | None = None,
        weights: Sequence[float] = PAPER_WEIGHTS,
        lint_gate: bool = True,
        check_runtime: bool = True,
        interactive: bool = True,
        max_actions: int = 5,
        max_graded: int = 3,
        agent_time_budget: float = 30.0,
        agent_viewport: tuple[int, int] = AGENT_VIEWPORT,
        max_concurrency: int | None = None,
        pool_size: int = 4,
        page_timeout: float = 20.0,
        router: Callable | None = None,
        screenshot_dir: str | None = None,
        cache_size: int = 4096,
        completion_timeout: float | None = None,
        judge_timeout: float = 120.0,
        max_infrastructure_failure_rate: float | None = 0.2,
        failure_window: int = 2,
    ):
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3 or any(math.isnan(w) for w in weights):
            raise ValueError(f"`weights` must be three numbers (execution, static, interactive), got {weights!r}.")
        self.page_judge = page_judge or DesignJudge()
        self.interaction_judge = interaction_judge or HeuristicInteractionJudge()
        self.weights = weights
        self.lint_gate = lint_gate
        self.check_runtime = check_runtime
        self.interactive = interactive
        self.max_graded = max_graded
        self.agent = InteractiveAgent(
            self.interaction_judge,
            max_actions=max_actions,
            max_graded=max_graded,
            time_budget=agent_time_budget,
            viewport=agent_viewport,
        )
        self._pool = pool
        self._owns_pool = pool is None
        self._pool_kwargs = {
            "size": pool_size,
            "page_timeout": page_timeout,
            "router": router,
            "interact_timeout": agent_time_budget + 15.0,
        }
        self.completion_timeout = completion_timeout
        self.judge_timeout = judge_timeout
        self.max_infrastructure_failure_rate = max_infrastructure_failure_rate
        self._window: deque[tuple[int, Counter]] = deque(maxlen=max(1, failure_window))
        self._pool_lock = threading.Lock()
        self.max_concurrency = max_concurrency
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        self.cache_size = cache_size
        self._cache: OrderedDict[str, asyncio.Future] = OrderedDict()
        self._semaphore: asyncio.Semaphore | None = None
        self._logged_batches: OrderedDict[int, None] = OrderedDict()
        self.counters: Counter = Counter()
        self.last_screenshots: dict[str, tuple[bytes, str]] = {}
        self.last_pages: dict[str, dict[str, Any]] = {}
        self.pages_version = 0
        self.execution = self._make_reward("aesthetic_execution", lambda e: e.execution)
        self.static = self._make_reward("aesthetic_static", lambda e: e.static)
        self.interactive_reward = self._make_reward("aesthetic_interactive", lambda e: e.interactive)
        self.combined = self._make_reward("agentic_aesthetic_reward", lambda e: e.total(self.weights))

    @classmethod
    def from_settings(
        cls,
        judge_base_url: str | None = None,
        judge_model: str | None = None,
        agent_base_url: str | None = None,
        agent_model: str | None = None,
        client_kwargs: dict[str, Any] | None = None,
        serve_cdn_libraries: bool = True,
        **kwargs,
    ) -> AgenticAestheticReward:
        """
        Build the reward from plain settings (what recipes and configs hold): VLM judges on an OpenAI-compatible
        endpoint (the offline judges when `judge_base_url` is `None`), and a [`~trl_ext.web.vendor.CDNRouter`] serving
        local copies of CDN libraries.

        Args:
            judge_base_url (`str`, *optional*), judge_model (`str`, *optional*):
                Endpoint and model of the static judge (and of the GUI agent unless `agent_base_url` is given).
            agent_base_url (`str`, *optional*), agent_model (`str`, *optional*):
                Endpoint and model of the GUI agent's planner and grader.
            client_kwargs (`dict`, *optional*):
                Arguments of [`~trl_ext.judges.openai_compat.OpenAICompatibleClient`] (`api_key_env`, `timeout`,
                `max_retries`, `max_concurrency`, ...).
            serve_cdn_libraries (`bool`, *optional*, defaults to `True`):
                Route the pages' CDN requests to the vendored libraries.
            **kwargs:
                The other arguments of [`AgenticAestheticReward`].
        """
        if judge_base_url is not None:
            from ..web.vlm_judge import VLMPageJudge

            kwargs["page_judge"] = VLMPageJudge.from_endpoint(judge_base_url, judge_model, client_kwargs=client_kwargs)
        if (agent_base_url or judge_base_url) is not None:
            from ..web.vlm_judge import VLMInteractionJudge

            kwargs["interaction_judge"] = VLMInteractionJudge.from_endpoint(
                agent_base_url or judge_base_url, agent_model or judge_model, client_kwargs=client_kwargs
            )
        if serve_cdn_libraries:
            from ..web.vendor import CDNRouter

            kwargs["router"] = CDNRouter().handle
        return cls(**kwargs)

    # ------------------------------------------------------------------------------------------------------------
    @property
    def pool(self) -> BrowserPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = BrowserPool(**self._pool_kwargs)
                atexit.register(self.close)
            return self._pool

    @property
    def reward_funcs(self) -> list[Callable[..., list[float | None]]]:
        """The execution, static and interactive callables (weight them with `weights`)."""
        return [self.execution, self.static, self.interactive_reward]

    def close(self) -> None:
        """Close the pool if this object created it, and the judges' clients. Idempotent."""
        pool = self._pool
        if pool is not None and not pool._closed:
            for judge in {
                id(self.page_judge): self.page_judge,
                id(self.interaction_judge): self.interaction_judge,
            }.values():
                try:
                    pool.call(judge.aclose)
                except Exception as error:  # closing must not fail a finished training run
                    logger.warning("closing %s failed: %s", judge.name, error)
            if self._owns_pool:
                pool.close()
                self._pool = None

    # ------------------------------------------------------------------------------------------------------------
    def _make_reward(self, name: str, pick: Callable[[AestheticEvaluation], float | None]):
        def reward(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
            evaluations = self.evaluate(prompts, completions, **kwargs)
            return [pick(evaluation) for evaluation in evaluations]

        reward.__name__ = reward.__qualname__ = name
        return reward

    def evaluate(self, prompts, completions, **kwargs) -> list[AestheticEvaluation]:
        """
        Evaluate a batch (TRL's `prompts`/`completions`; conversational or standard), reusing cached evaluations.
        Logs through `log_metric` (once per batch) and saves the best/worst screenshots when `trainer_state` is
        given.
        """
        if prompts is None or completions is None:
            raise ValueError("AgenticAestheticReward needs `prompts` and `completions` (TRL passes both).")
        if len(prompts) != len(completions):
            raise ValueError(f"Got {len(prompts)} prompts for {len(completions)} completions; they must pair up.")
        instructions = [instruction_text(p) for p in prompts]
        documents = [extract_html(completion_text(c)) for c in completions]
        keys = [_key(i, d) for i, d in zip(instructions, documents)]
        evaluations = self.pool.call(
            self._evaluate_batch, keys, instructions, documents, timeout=self._batch_timeout(len(documents))
        )
        batch_id = hash(tuple(keys))
        step = getattr(kwargs.get("trainer_state"), "global_step", None)
        if batch_id not in self._logged_batches:
            self._logged_batches[batch_id] = None
            if len(self._logged_batches) > 64:
                self._logged_batches.popitem(last=False)
            self._log_batch(evaluations, instructions, kwargs.get("log_metric"), step)
        return evaluations

    def _batch_timeout(self, n: int) -> float:
        rounds = -(-n // (self.max_concurrency or self.pool.size))
        return (rounds + 1) * self._deadline()

    async def _evaluate_batch(
        self, keys: list[str], instructions: list[str], documents: list[str]
    ) -> list[AestheticEvaluation]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency or self.pool.size)
        futures = []
        for key, instruction, html in zip(keys, instructions, documents):
            future = self._cache.get(key)
            if future is None or (future.done() and future.exception() is not None):
                future = asyncio.ensure_future(self._evaluate_one(instruction, html))
                self._cache[key] = future
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            futures.append(future)
        return list(await asyncio.gather(*futures))

    def _deadline(self) -> float:
        if self.completion_timeout is not None:
            return self.completion_timeout
        return self.pool.render_timeout() + self.judge_timeout

    async def _evaluate_one(self, instruction: str, html: str) -> AestheticEvaluation:
        lint = lint_html(html)
        evaluation = AestheticEvaluation(html=html, lint=lint)
        failures: list[str] = []
        if not lint.passed:
            failures.append("lint_failed")
            if self.lint_gate:
                evaluation.failures = tuple(failures)
                return evaluation
        interact = self.agent.run_on(instruction) if self.interactive else None
        async with self._semaphore:
            # One deadline for the whole evaluation, from the moment the completion has a browser.
            deadline = time.monotonic() + self._deadline()
            try:
                render = await asyncio.wait_for(
                    self.pool.arender_confirmed(html, measure=True, interact=interact), self._deadline()
                )
            except Exception as error:  # the machine's fault: a training run must not die of one page
                kind = (
                    "machine_slow"
                    if isinstance(error, InfrastructureError) and not isinstance(error, BrowserCrashedError)
                    else "deadline_exceeded"
                    if isinstance(error, asyncio.TimeoutError)
                    else "browser_failed"
                )
                logger.warning("No reward for a completion (%s): %r", kind, error)
                evaluation.execution = evaluation.static = evaluation.interactive = None
                evaluation.failures = (*failures, kind)
                return evaluation
        evaluation.render = render
        if not render.ok:
            failures.append(render.error or "page_error")
            evaluation.failures = tuple(failures)
            return evaluation  # the page's fault: execution -1, aesthetic terms 0
        runtime_ok = not (render.console_errors or render.failed_requests)
        if not runtime_ok:
            failures.append("runtime_errors")
        evaluation.execution = 1.0 if lint.passed and (runtime_ok or not self.check_runtime) else -1.0

        try:
            score = await asyncio.wait_for(
                self.page_judge.score_page(instruction, render), max(0.1, deadline - time.monotonic())
            )
        except asyncio.TimeoutError:
            logger.warning("The static judge passed the completion's deadline.")
            score = None
        if score is None:
            failures.append("judge_failed")
            evaluation.static = None
        else:
            evaluation.page_score = score
            evaluation.static = min(max(score.total / 100.0, 0.0), 1.0)

        report: InteractionReport | None = render.interaction
        evaluation.interaction = report
        if report is not None:
            if report.judge_failed:
                failures.append("agent_failed")
                evaluation.interactive = None
            else:
                if report.error == "agent_timeout":
                    failures.append("agent_timeout")
                evaluation.interactive = report.score / self.max_graded
        evaluation.failures = tuple(failures)
        return evaluation

    def preflight(self) -> None:
        """
        Check, before training, that the browser renders, which network isolation holds, and that the judges answer;
        raises `RuntimeError` naming the setting to fix. (A dead judge would otherwise turn every static term into
        `None` and silently train on the execution term alone.)
        """
        try:
            render = self.pool.render(CONTROL_PAGE)
        except Exception as error:
            raise RuntimeError(
                f"Preflight: the browser pool cannot render a control page ({error}). Install Chromium "
                "(`apt-get install chromium`) or set TRL_EXT_CHROMIUM, and check `page_timeout`."
            ) from error
        if not render.ok:
            raise RuntimeError(
                f"Preflight: a control page failed to render ({render.error}): the machine is too slow for "
                f"`page_timeout={self.pool.page_timeout}` or Chromium is broken."
            )
        logger.info("Preflight: Chromium renders; network isolation: %s.", self.pool.network_isolation)
        score = self.pool.call(self._judge_once, render, timeout=self.judge_timeout + 10)
        if score is None:
            raise RuntimeError(
                f"Preflight: the static judge {self.page_judge.name!r} gave no score for a control page. Check "
                "`judge_base_url` / `judge_model` (is the server up and serving that model?) and `judge_api_key_env`, "
                "or leave `judge_base_url` unset for the offline design judge."
            )
        if self.interactive:
            plan = self.pool.call(self._plan_once, render, timeout=self.judge_timeout + 10)
            if plan is None:
                raise RuntimeError(
                    f"Preflight: the GUI agent's planner {self.interaction_judge.name!r} gave no plan. Check "
                    "`agent_base_url` / `agent_model` (or `judge_base_url`), or set `interactive_agent=False`."
                )

    async def _judge_once(self, render: RenderResult) -> PageScore | None:
        try:
            return await asyncio.wait_for(self.page_judge.score_page("A control page", render), self.judge_timeout)
        except Exception as error:
            logger.warning("Preflight judge call failed: %s", error)
            return None

    async def _plan_once(self, render: RenderResult):
        try:
            return await asyncio.wait_for(
                self.interaction_judge.plan_interactions("A control page", render.screenshot, [], 1),
                self.judge_timeout,
            )
        except Exception as error:
            logger.warning("Preflight planner call failed: %s", error)
            return None

    def _check_infrastructure(self, evaluations: list[AestheticEvaluation]) -> None:
        """Stop training when infrastructure failures took more than the allowed share of a term's values."""
        lost = Counter(term for e in evaluations for term in TERMS if getattr(e, term) is None)
        self._window.append((len(evaluations), lost))
        limit = self.max_infrastructure_failure_rate
        if limit is None or len(self._window) < self._window.maxlen:
            return
        total = sum(n for n, _ in self._window)
        for term in TERMS:
            rate = sum(c[term] for _, c in self._window) / max(1, total)
            if rate > limit:
                raise RewardInfrastructureError(
                    f"The {term} term was unavailable (infrastructure failure) for {rate:.0%} of the completions of "
                    f"the last {len(self._window)} batches (limit {limit:.0%}; failures: {dict(self.counters)}). "
                    "Training on the remaining terms would optimise a different objective, so it stops here. Check "
                    "the judge endpoint (`judge_base_url`), the browser (`page_timeout`, `browser_pool_size`) and "
                    "the machine's load, or raise `max_infrastructure_failure_rate`."
                )

    def _log_batch(self, evaluations, instructions, log_metric, step) -> None:
        batch_counts = Counter(kind for e in evaluations for kind in e.failures)
        self.counters.update(batch_counts)
        infrastructure = sum(any(getattr(e, term) is None for term in TERMS) for e in evaluations)
        if infrastructure:
            logger.warning(
                "%d of %d completions lost a reward term to an infrastructure failure: %s",
                infrastructure,
                len(evaluations),
                dict(batch_counts),
            )
        scores = [e.page_score for e in evaluations if e.page_score is not None]
        self._keep_screenshots(evaluations, instructions, step)
        if log_metric is not None:
            for kind in FAILURE_KINDS:
                log_metric(f"aesthetic/failures/{kind}", float(batch_counts.get(kind, 0)))
            log_metric("aesthetic/lint_pass_rate", sum(e.lint.passed for e in evaluations) / len(evaluations))
            if scores:
                for part in ("alignment", "aesthetics", "structure"):
                    log_metric(f"aesthetic/{part}", sum(getattr(s, part) for s in scores) / len(scores))
        self._check_infrastructure(evaluations)

    def _keep_screenshots(self, evaluations, instructions, step) -> None:
        # The best and worst page of the batch, rendered or not (a page the lint gate stopped has no screenshot but
        # still has its HTML).
        ranked = sorted(
            (e.total(self.weights), i) for i, e in enumerate(evaluations) if e.total(self.weights) is not None
        )
        self.last_pages = {}
        self.last_screenshots = {}
        self.pages_version += 1
        if not ranked:
            return
        for tag, (total, index) in (("worst", ranked[0]), ("best", ranked[-1])):
            evaluation = evaluations[index]
            caption = f"{tag} reward={total:.3f}: {instructions[index][:200]}"
            png = evaluation.render.screenshot if evaluation.render is not None else None
            self.last_pages[tag] = {
                "png": png or None,
                "html": evaluation.html,
                "caption": caption,
                "record": {
                    "instruction": instructions[index],
                    "reward": total,
                    "execution": evaluation.execution,
                    "static": evaluation.static,
                    "interactive": evaluation.interactive,
                    "page_score": None if evaluation.page_score is None else vars(evaluation.page_score),
                    "failures": list(evaluation.failures),
                    "lint_passed": evaluation.lint.passed,
                    "lint": [f"{m.rule}@{m.line}:{m.col}" for m in evaluation.lint.messages][:20],
                },
            }
            if png:
                self.last_screenshots[tag] = (png, caption)
        if self.screenshot_dir is not None:
            self.write_pages(self.screenshot_dir, step)

    def write_pages(self, folder: str | Path, step: int | None = None) -> list[Path]:
        """
        Write the best and worst page of the last batch to `folder`: `step_<step>_<tag>.html` (the page),
        `.json` (its reward terms, judge scores, failures and lint messages, and the request) and `.png` (its
        screenshot, when it was rendered), `latest_<tag>.*` without `step`. Returns the paths written.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for tag, page in self.last_pages.items():
            stem = folder / (f"step_{step:06d}_{tag}" if step is not None else f"latest_{tag}")
            html_path, json_path = stem.with_suffix(".html"), stem.with_suffix(".json")
            html_path.write_text(page["html"], encoding="utf-8", errors="surrogatepass")
            record = {**page["record"], "step": step, "html": html_path.name, "screenshot": None}
            if page["png"]:
                png_path = stem.with_suffix(".png")
                png_path.write_bytes(_png_thumbnail(page["png"]))
                record["screenshot"] = png_path.name
                written.append(png_path)
            json_path.write_text(json.dumps(record, indent=2))
            written += [html_path, json_path]
        return written


def _key(instruction: str, html: str) -> str:
    return hashlib.sha1(f"{instruction}\0{html}".encode("utf-8", "surrogatepass")).hexdigest()


def _png_thumbnail(png: bytes, max_height: int = 2400) -> bytes:
    """Cut very tall full-page screenshots before writing them to disk."""
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    if image.height <= max_height:
        return png
    out = io.BytesIO()
    image.crop((0, 0, image.width, max_height)).save(out, format="PNG")
    return out.getvalue()


__all__ = [
    "FAILURE_KINDS",
    "PAPER_WEIGHTS",
    "AestheticEvaluation",
    "AgenticAestheticReward",
    "RewardInfrastructureError",
    "instruction_text",
]
