from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class AesCoderGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`AesCoderGRPOTrainer`]: GRPO with AesCoder's agentic aesthetic reward
    ([paper](https://huggingface.co/papers/2510.23272)).

    Training defaults follow the paper's RL stage: learning rate 3e-6, KL `beta=0.001`, 8 completions per prompt, clip
    `epsilon=0.5` (as reported). Every [`~trl.GRPOConfig`] parameter is available too; `reward_weights` defaults to
    `aesthetic_weights` followed by 1.0 for any extra reward function.

    > Parameters of the judges (static aesthetics agent and GUI agent)

    Parameters:
        judge_base_url (`str`, *optional*):
            OpenAI-compatible endpoint of the VLM judge (e.g. `http://localhost:8000/v1` for a local vLLM serving
            Qwen2.5-VL). `None` uses the offline, model-free design judge and heuristic GUI agent.
        judge_model (`str`, *optional*):
            Model name sent to the endpoint (required with `judge_base_url`).
        judge_api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`):
            Environment variable holding the endpoint's API key (read at run time, never stored in the config).
        judge_timeout (`float`, *optional*, defaults to `120.0`):
            Seconds per judge request.
        judge_max_retries (`int`, *optional*, defaults to `3`):
            Retries of a judge request on timeouts, 429 and 5xx, with exponential backoff.
        judge_max_concurrency (`int`, *optional*, defaults to `16`):
            Judge requests in flight at once (per process).
        agent_base_url (`str`, *optional*), agent_model (`str`, *optional*):
            Endpoint and model of the GUI agent's planner/grader; default to the judge's.

    > Parameters of the agentic reward

    Parameters:
        aesthetic_weights (`list[float]`, *optional*, defaults to `[0.1, 0.8, 0.1]`):
            Weights of the execution, static and interactive terms.
        lint_gate (`bool`, *optional*, defaults to `True`):
            A page that fails the lint gets 0 for the two aesthetic terms (the paper skips those agents).
        check_runtime (`bool`, *optional*, defaults to `True`):
            JavaScript errors and failed resource loads during page load also fail the execution term.
        interactive_agent (`bool`, *optional*, defaults to `True`):
            Run the GUI agent (otherwise the interactive term is 0).
        agent_max_actions (`int`, *optional*, defaults to `5`), agent_max_graded (`int`, *optional*, defaults to
        `3`), agent_time_budget (`float`, *optional*, defaults to `60.0`):
            GUI agent: interactions planned, interactions graded, hard seconds per page.
        browser_pool_size (`int`, *optional*, defaults to `4`):
            Browser contexts per process (pages rendered at once).
        page_timeout (`float`, *optional*, defaults to `20.0`):
            Hard seconds to load, settle and screenshot one page.
        serve_cdn_libraries (`bool`, *optional*, defaults to `True`):
            Serve local copies of common CDN libraries (Tailwind, three.js, Chart.js, ...) to the pages, from the
            vendor folder installed with `python -m trl_ext.web.vendor install`.
        screenshot_logging_steps (`int`, *optional*, defaults to `10`):
            Every this many optimizer steps (0 disables), log the best and worst page of the last batch to
            TensorBoard/W&B and write them to `<output_dir>/screenshots/step_<global_step>_{best,worst}` (`.png`
            screenshot when the page was rendered, `.html` page, `.json` reward terms and scores), named by the step
            TensorBoard shows them at.
        reward_preflight (`bool`, *optional*, defaults to `True`):
            Before training, render a control page and have the judges score it; a dead endpoint or a browser that
            cannot render stops the run at once with an error naming the setting to fix.
        max_infrastructure_failure_rate (`float`, *optional*, defaults to `0.2`), infrastructure_failure_window
        (`int`, *optional*, defaults to `2`):
            Stop training (after saving a checkpoint) when more than this share of a reward term's values were lost
            to infrastructure failures (judge, browser, machine) over the last `infrastructure_failure_window`
            batches, instead of training on the remaining terms alone. `None` disables the check.
    """

    # Paper defaults (AesCoder RL stage)
    learning_rate: float = field(default=3e-6, metadata={"help": "AesCoder RL learning rate."})
    beta: float = field(default=0.001, metadata={"help": "KL coefficient (AesCoder: 0.001)."})
    num_generations: int | None = field(default=8, metadata={"help": "Completions per prompt (AesCoder: 8)."})
    epsilon: float = field(default=0.5, metadata={"help": "Clip range (AesCoder reports 0.5)."})

    # Judges
    judge_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint of the VLM judge; None uses the offline design judge."},
    )
    judge_model: str | None = field(default=None, metadata={"help": "Model name of the judge endpoint."})
    judge_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable with the judge endpoint's API key."}
    )
    judge_timeout: float = field(default=120.0, metadata={"help": "Seconds per judge request."})
    judge_max_retries: int = field(default=3, metadata={"help": "Retries of a failed judge request."})
    judge_max_concurrency: int = field(default=16, metadata={"help": "Judge requests in flight per process."})
    agent_base_url: str | None = field(
        default=None, metadata={"help": "Endpoint of the GUI agent's planner/grader (defaults to the judge's)."}
    )
    agent_model: str | None = field(
        default=None, metadata={"help": "Model of the GUI agent (defaults to the judge's)."}
    )

    # Agentic reward
    aesthetic_weights: list[float] = field(
        default_factory=lambda: [0.1, 0.8, 0.1],
        metadata={"help": "Weights of the execution, static and interactive terms."},
    )
    lint_gate: bool = field(default=True, metadata={"help": "Lint failure zeroes the aesthetic terms."})
    check_runtime: bool = field(default=True, metadata={"help": "JS errors / failed loads fail the execution term."})
    interactive_agent: bool = field(default=True, metadata={"help": "Run the GUI agent."})
    agent_max_actions: int = field(default=5, metadata={"help": "Interactions the GUI agent plans."})
    agent_max_graded: int = field(default=3, metadata={"help": "Interactions graded (score range 0..this)."})
    agent_time_budget: float = field(default=60.0, metadata={"help": "Hard seconds of the GUI agent per page."})
    browser_pool_size: int = field(default=4, metadata={"help": "Browser contexts per process."})
    page_timeout: float = field(default=20.0, metadata={"help": "Hard seconds to render one page."})
    serve_cdn_libraries: bool = field(default=True, metadata={"help": "Serve local copies of CDN libraries."})
    screenshot_logging_steps: int = field(
        default=10, metadata={"help": "Log and write the best/worst pages every this many steps (0: never)."}
    )
    reward_preflight: bool = field(
        default=True, metadata={"help": "Check the browser and the judges on a control page before training."}
    )
    max_infrastructure_failure_rate: float | None = field(
        default=0.2,
        metadata={"help": "Stop when more than this share of a reward term is lost to infrastructure failures."},
    )
    infrastructure_failure_window: int = field(
        default=2, metadata={"help": "Batches over which the infrastructure failure rate is measured."}
    )

    def __post_init__(self):
        super().__post_init__()
        if len(self.aesthetic_weights) != 3:
            raise ValueError(
                f"`aesthetic_weights` needs three weights (execution, static, interactive), got {self.aesthetic_weights}."
            )
        if self.judge_base_url is not None:
            if not self.judge_base_url.startswith(("http://", "https://")):
                raise ValueError(f"`judge_base_url` must be an http(s) URL, got {self.judge_base_url!r}.")
            if not self.judge_model:
                raise ValueError(
                    "`judge_model` is required with `judge_base_url` (the model name the endpoint serves)."
                )
        if self.agent_base_url is not None and not (self.agent_model or self.judge_model):
            raise ValueError("`agent_model` (or `judge_model`) is required with `agent_base_url`.")
        for name in ("browser_pool_size", "agent_max_actions", "agent_max_graded"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        for name in ("page_timeout", "agent_time_budget", "judge_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
