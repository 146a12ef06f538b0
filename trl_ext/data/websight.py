"""
AesCoder's RL prompt set from WebSight v0.2 (`HuggingFaceM4/WebSight`, config `v0.2`).

AesCoder (arXiv 2510.23272) trains its GRPO stage on 20K WebSight v0.2 prompts rewritten by GPT-4o. This builder
makes the offline equivalent: it streams WebSight's text fields only (`llm_generated_idea`, and the page's HTML in
`text` for category signals; the screenshots are never downloaded: parquet sources are read column by column), cleans
and deduplicates the ideas, turns each into an instruction with `instruction_template`, and assigns one of the five
OpenDesign categories with [`categorize_web_idea`]. The output has the columns of the bundled
[`~trl_ext.data.load_web_design_prompts`] (`prompt` with `WEB_DESIGN_SYSTEM_PROMPT`, `instruction`, `category`, `id`),
so `recipes/aescoder_grpo.py --dataset_name ORG/NAME` trains on it as is.

Categories are keyword rules (WebSight's ideas are mostly company websites, so most rows are `website`), checked in
this order, the first match wins:

1. `3d`: three.js/WebGL (idea or HTML), "interactive/rotating/immersive/... 3D", or "3D"/"three-dimensional"
   followed in the same clause by a 3D noun (model, scene, viewer, render, globe, cube, tour, ...). "3D printing
   company: ..." stays a website.
2. `game`: a playable thing: "playable", "mini-game", "puzzle/memory/trivia/quiz/word/typing/... game", tic-tac-toe,
   snake game, tetris, sudoku, high score, "a (simple|fun|...) game". A "game studio" or "gaming company" site stays a
   website.
3. `data_visualization`: chart(s), graph(s), dashboard(s), data visualisation, infographic, heat map, histogram,
   scatter plot, KPI(s), or a chart library in the HTML (Chart.js, D3, Plotly, ECharts, ApexCharts, Highcharts).
4. `ui_component`: "UI component", "component library", "widget", or an idea whose subject (after an optional
   "Name:" prefix) is a single control (button, modal, card, navbar, dropdown, form, toggle, slider, tooltip,
   accordion, tabs, pagination, progress bar, date picker, search bar, menu) and that mentions no page, site or layout.
5. `website`: everything else.

```bash
python -m trl_ext.data.websight --output_dir data/websight-20k                         # 20K rows, seed 42
python -m trl_ext.data.websight --output_dir data/websight-2k --num_rows 2000 --seed 0
```
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._builder import HubDatasetBuilder, SchemaError, SourceArguments, check_positive, iter_source_rows
from .aescode import AESCODER_CITATION

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

WEBSIGHT_HUB_ID = "HuggingFaceM4/WebSight"
WEBSIGHT_CONFIG = "v0.2"
IDEA_COLUMN = "llm_generated_idea"
HTML_COLUMN = "text"
WEBSIGHT_SCHEMA = """\
  image: image                   (the screenshot; never read)
  text: string                   (the page's HTML with Tailwind CSS)
  llm_generated_idea: string     (the website idea the page was generated from)"""
DEFAULT_INSTRUCTION_TEMPLATE = "Create a complete, polished web page for this idea: {idea}"

CITATIONS = [
    AESCODER_CITATION,
    """@article{laurencon2024websight,
  title   = {Unlocking the conversion of Web Screenshots into HTML Code with the WebSight Dataset},
  author  = {Hugo Lauren{\\c{c}}on and L{\\'e}o Tronchon and Victor Sanh},
  journal = {arXiv preprint arXiv:2403.09029},
  year    = {2024}
}""",
]

# --------------------------------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------------------------------

_3D_TECH = re.compile(r"\b(three\.js|threejs|webgl)\b")
_3D_HTML = re.compile(r"(\bthree(\.module|\.core)?(\.min)?\.js|\bthreejs\b|webgl)")
_3D_QUALIFIED = re.compile(r"\b(interactive|rotating|spinning|immersive|animated|realistic|virtual)\s+(3d|3-d)\b")
_3D_NOUN = re.compile(
    r"\b(3d|3-d|three[- ]dimensional)\b[^.;:!?]{0,40}?\b(models?|scenes?|viewers?|render\w*|animat\w*|rotat\w*|"
    r"globes?|cubes?|objects?|graphics|visuali\w*|tours?|environments?|effects?|worlds?|experiences?|walkthroughs?|"
    r"spheres?|planets?|landscapes?)\b"
)
_GAME = re.compile(
    r"\b(playable|mini[- ]?games?|(browser|arcade|puzzle|memory|trivia|quiz|word|typing|platformer|shooter|racing|"
    r"snake|matching|guessing|clicker|idle)[- ]games?|tic[- ]tac[- ]toe|tetris|sudoku|minesweeper|crossword|"
    r"high[- ]scores?|game[- ]over|game board|game loop)\b"
    r"|\b(an?|the)\s+(?:(?:simple|small|fun|interactive|classic|casual|retro|addictive|little)\s+)+game\b"
)
_DATAVIS = re.compile(
    r"\b(charts?|graphs?|dashboards?|data[- ]visuali[sz]ations?|visuali[sz]\w* (the |of )?data|infographics?|"
    r"heat[- ]?maps?|histograms?|scatter[- ]?plots?|line plots?|sparklines?|kpis?)\b"
)
_DATAVIS_HTML = re.compile(
    r"(chart(\.min)?\.js|chartjs|\bd3(\.v\d+)?(\.min)?\.js|plotly|echarts|apexcharts|highcharts)"
)
_UI_EXPLICIT = re.compile(r"\b(ui components?|component library|widgets?)\b")
_UI_SUBJECT = re.compile(
    r"^(?:[^:]{0,40}:\s*)?(?:an?\s+|the\s+)?(?:[\w-]+\s+){0,3}?(buttons?|modals?|dialogs?|cards?|navbars?|"
    r"navigation bars?|dropdowns?|forms?|toggles?|switch(?:es)?|sliders?|tooltips?|accordions?|tabs|pagination|"
    r"progress bars?|date pickers?|search bars?|menus?)\b"
)
_PAGE_WORDS = re.compile(r"\b(pages?|sites?|websites?|layouts?|homepages?|landing)\b")


def categorize_web_idea(idea: str, html: str | None = None) -> str:
    """
    One of OpenDesign's five categories (`"website"`, `"3d"`, `"game"`, `"data_visualization"`, `"ui_component"`)
    for a web-design idea, by the keyword rules of this module's docstring.

    Args:
        idea (`str`):
            The idea or instruction.
        html (`str`, *optional*):
            The page's HTML, for library signals (three.js/WebGL, chart libraries).
    """
    text = " ".join(idea.lower().split())
    markup = html.lower() if html else ""
    if _3D_TECH.search(text) or _3D_QUALIFIED.search(text) or _3D_NOUN.search(text) or _3D_HTML.search(markup):
        return "3d"
    if _GAME.search(text):
        return "game"
    if _DATAVIS.search(text) or _DATAVIS_HTML.search(markup):
        return "data_visualization"
    if _UI_EXPLICIT.search(text) or (_UI_SUBJECT.search(text) and not _PAGE_WORDS.search(text)):
        return "ui_component"
    return "website"


_ENUMERATION = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")


def clean_idea(idea: str) -> str:
    """Collapse whitespace and drop a leading list marker ("3.", "-", "*") and wrapping quotes or asterisks."""
    text = _ENUMERATION.sub("", " ".join(idea.split()))
    return text.strip().strip("\"'*").strip()


def idea_key(idea: str) -> str:
    """The deduplication key of an idea: lowercase letters and digits only."""
    return re.sub(r"[^0-9a-z]+", " ", idea.lower()).strip()


# --------------------------------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class WebSightPromptsArguments(SourceArguments):
    """
    Parameters of [`WebSightPromptsBuilder`].

    Args:
        source (`str`, *optional*, defaults to `"HuggingFaceM4/WebSight"`):
            Hub id or local copy (parquet/jsonl) with WebSight's columns.
        source_config (`str`, *optional*, defaults to `"v0.2"`):
            WebSight version.
        num_rows (`int`, *optional*, defaults to `20000`):
            Rows to keep (AesCoder: 20K); `None` for every eligible idea.
        shuffle (`bool`, *optional*, defaults to `True`):
            Shuffle the source before taking rows; `False` keeps the source order.
        seed (`int`, *optional*, defaults to `42`):
            Shuffle seed; `None` is the same as `shuffle=False`.
        shuffle_buffer_size (`int`, *optional*, defaults to `10000`):
            Shuffle buffer when streaming (the shard order is shuffled too).
        dedup (`bool`, *optional*, defaults to `True`):
            Drop ideas whose letters and digits repeat an earlier one (case and punctuation ignored).
        min_words (`int`, *optional*, defaults to `5`):
            Drop shorter ideas.
        max_words (`int`, *optional*, defaults to `150`):
            Drop longer ideas (`None` for no limit).
        categories (`list[str]`, *optional*):
            Keep only these categories.
        instruction_template (`str`, *optional*):
            Turns an idea into the user message; must contain `{idea}`.
        system_prompt (`str`, *optional*, defaults to `WEB_DESIGN_SYSTEM_PROMPT`):
            System message of each prompt; an empty string for none.
        use_html_signals (`bool`, *optional*, defaults to `True`):
            Read the HTML (`text`) for category signals; `False` reads the ideas only.
    """

    source: str = field(default=WEBSIGHT_HUB_ID, metadata={"help": "Hub id or local copy of WebSight."})
    source_config: str | None = field(default=WEBSIGHT_CONFIG, metadata={"help": "WebSight version (config)."})
    num_rows: int | None = field(default=20_000, metadata={"help": "Rows to keep (AesCoder: 20K)."})
    shuffle: bool = field(default=True, metadata={"help": "Shuffle the source (False keeps its order)."})
    seed: int | None = field(default=42, metadata={"help": "Shuffle seed."})
    shuffle_buffer_size: int = field(default=10_000, metadata={"help": "Shuffle buffer when streaming."})
    dedup: bool = field(default=True, metadata={"help": "Drop repeated ideas (case and punctuation ignored)."})
    min_words: int = field(default=5, metadata={"help": "Drop ideas with fewer words."})
    max_words: int | None = field(default=150, metadata={"help": "Drop ideas with more words."})
    categories: list[str] | None = field(default=None, metadata={"help": "Keep only these categories."})
    instruction_template: str = field(
        default=DEFAULT_INSTRUCTION_TEMPLATE, metadata={"help": "User message template with '{idea}'."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message ('' for none); defaults to WEB_DESIGN_SYSTEM_PROMPT."}
    )
    use_html_signals: bool = field(default=True, metadata={"help": "Use the page HTML for category signals."})

    def __post_init__(self):
        from . import WEB_DESIGN_CATEGORIES, WEB_DESIGN_SYSTEM_PROMPT

        check_positive("num_rows", self.num_rows)
        check_positive("shuffle_buffer_size", self.shuffle_buffer_size, allow_none=False)
        check_positive("min_words", self.min_words, allow_none=False, allow_zero=True)
        check_positive("max_words", self.max_words)
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"`max_words` ({self.max_words}) must be >= `min_words` ({self.min_words}).")
        if self.categories is not None:
            unknown = sorted(set(self.categories) - set(WEB_DESIGN_CATEGORIES))
            if unknown or not self.categories:
                raise ValueError(
                    f"Unknown `categories` {unknown or self.categories}; choose from {list(WEB_DESIGN_CATEGORIES)}."
                )
        if "{idea}" not in self.instruction_template:
            raise ValueError(f"`instruction_template` must contain '{{idea}}', got {self.instruction_template!r}.")
        try:
            self.instruction_template.format(idea="x")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"`instruction_template` may only use the '{{idea}}' field ({error!r}); double other braces."
            ) from error
        if self.system_prompt is None:
            self.system_prompt = WEB_DESIGN_SYSTEM_PROMPT
        if self.seed is None:
            self.shuffle = False


class WebSightPromptsBuilder(HubDatasetBuilder):
    """
    Build AesCoder-style RL prompts from WebSight v0.2 ideas (see the module docstring).

    Example:

    ```python
    >>> from trl_ext.data.websight import WebSightPromptsBuilder
    >>> dataset = WebSightPromptsBuilder(num_rows=20_000, seed=42).build()  # streams the Hub  # doctest: +SKIP
    ```
    """

    arguments_class = WebSightPromptsArguments
    module = "trl_ext.data.websight"
    pretty_name = "WebSight v0.2 web-design prompts (AesCoder RL)"
    license = "cc-by-4.0"
    task_categories = ["text-generation"]
    tags = ["code", "html", "web-design", "reinforcement-learning", "grpo", "aescoder", "websight"]
    citations = CITATIONS

    def build(self) -> Dataset:
        from datasets import Dataset, Features, List, Value

        args = self.args
        columns = [IDEA_COLUMN, HTML_COLUMN] if args.use_html_signals else [IDEA_COLUMN]
        rows = iter_source_rows(
            args.source,
            required_columns=columns,
            expected_schema=WEBSIGHT_SCHEMA,
            config=args.source_config,
            split=args.source_split,
            revision=args.source_revision,
            streaming=args.streaming,
            shuffle_seed=args.seed if args.shuffle else None,
            shuffle_buffer_size=args.shuffle_buffer_size,
        )
        counts = dict.fromkeys(["read", "empty", "too_short", "too_long", "duplicate", "other_category"], 0)
        seen: set[str] = set()
        kept: list[dict[str, Any]] = []
        per_category: dict[str, int] = {}
        for index, row in enumerate(rows):
            if args.num_rows is not None and len(kept) >= args.num_rows:
                break
            counts["read"] += 1
            raw = row.get(IDEA_COLUMN)
            if raw is not None and not isinstance(raw, str):
                raise SchemaError(
                    f"`{IDEA_COLUMN}` of row {index} of {args.source!r} is {type(raw).__name__}, expected string:\n"
                    f"{WEBSIGHT_SCHEMA}"
                )
            idea = clean_idea(raw or "")
            words = len(idea.split())
            if not idea:
                counts["empty"] += 1
                continue
            if words < args.min_words:
                counts["too_short"] += 1
                continue
            if args.max_words is not None and words > args.max_words:
                counts["too_long"] += 1
                continue
            key = idea_key(idea)
            if args.dedup and key in seen:
                counts["duplicate"] += 1
                continue
            html = row.get(HTML_COLUMN) if args.use_html_signals else None
            category = categorize_web_idea(idea, html if isinstance(html, str) else None)
            if args.categories is not None and category not in args.categories:
                counts["other_category"] += 1
                continue
            seen.add(key)
            instruction = args.instruction_template.format(idea=idea)
            messages = [{"role": "user", "content": instruction}]
            if args.system_prompt:
                messages.insert(0, {"role": "system", "content": args.system_prompt})
            kept.append(
                {
                    "prompt": messages,
                    "instruction": instruction,
                    "category": category,
                    "id": f"websight-{args.source_config or 'x'}-{len(kept):06d}",
                    "idea": idea,
                }
            )
            per_category[category] = per_category.get(category, 0) + 1
        if args.num_rows is not None and len(kept) < args.num_rows:
            logger.warning("Only %d eligible ideas in %r (asked for %d).", len(kept), args.source, args.num_rows)

        self.parameters = {
            "source": args.source,
            "source_config": args.source_config,
            "source_revision": args.source_revision,
            "num_rows": args.num_rows,
            "shuffle": args.shuffle,
            "seed": args.seed if args.shuffle else None,
            "shuffle_buffer_size": args.shuffle_buffer_size if args.streaming and args.shuffle else None,
            "dedup": args.dedup,
            "min_words": args.min_words,
            "max_words": args.max_words,
            "categories": args.categories or "all",
            "instruction_template": args.instruction_template,
            "use_html_signals": args.use_html_signals,
        }
        self.counts = {
            "source rows read": counts["read"],
            "empty ideas (dropped)": counts["empty"],
            f"fewer than {args.min_words} words (dropped)": counts["too_short"],
            f"more than {args.max_words} words (dropped)": counts["too_long"],
            "duplicates (dropped)": counts["duplicate"],
            "other categories (dropped)": counts["other_category"],
            **{f"category {name}": per_category.get(name, 0) for name in self._category_names()},
            "rows": len(kept),
        }
        logger.info("WebSight prompts: %s", self.counts)
        features = Features(
            {
                "prompt": List({"role": Value("string"), "content": Value("string")}),
                "instruction": Value("string"),
                "category": Value("string"),
                "id": Value("string"),
                "idea": Value("string"),
            }
        )
        return Dataset.from_list(kept, features=features)

    @staticmethod
    def _category_names() -> tuple[str, ...]:
        from . import WEB_DESIGN_CATEGORIES

        return WEB_DESIGN_CATEGORIES

    # Card --------------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        return (
            "Web-design prompts from the ideas of [WebSight v0.2](https://huggingface.co/datasets/HuggingFaceM4/WebSight)"
            ", for GRPO with agentic aesthetic rewards as in [AesCoder](https://huggingface.co/papers/2510.23272) "
            "(which trains on 20K WebSight v0.2 prompts). Each row asks for one self-contained HTML page and carries "
            "one of OpenDesign's five categories."
        )

    def method(self) -> str:
        args = self.args
        return (
            f"1. Stream `{IDEA_COLUMN}`"
            + (f" and `{HTML_COLUMN}`" if args.use_html_signals else "")
            + " (never the screenshots)"
            + (f", shuffled with seed {args.seed}." if args.shuffle else ", in source order.")
            + "\n2. Clean each idea (whitespace collapsed, list markers and wrapping quotes removed); keep those with "
            f"{args.min_words} to {args.max_words if args.max_words is not None else 'any number of'} words"
            + ("; drop repeats (same letters and digits, case-insensitive)" if args.dedup else "")
            + ".\n3. Category by keyword rules, first match wins: `3d` (three.js/WebGL, or 3D + a 3D noun), `game` "
            "(a playable game), `data_visualization` (charts, graphs, dashboards, chart libraries), `ui_component` "
            "(a single control, no page/site/layout), else `website` (see `trl_ext.data.websight`).\n"
            f"4. User message: `{args.instruction_template}`; "
            + ("system message: trl_ext's `WEB_DESIGN_SYSTEM_PROMPT`." if args.system_prompt else "no system message.")
            + "\n\nAesCoder had GPT-4o rewrite the ideas into prompts; this set uses a fixed template instead (the "
            "rewriting is not reproduced)."
        )

    def column_descriptions(self) -> dict[str, str]:
        return {
            "prompt": "Chat messages (system, user) given to the policy.",
            "instruction": "The user request alone.",
            "category": "website, 3d, game, ui_component or data_visualization (keyword rules).",
            "id": "Row id.",
            "idea": "The cleaned WebSight `llm_generated_idea`.",
        }

    def source_datasets(self) -> list[str]:
        return [WEBSIGHT_HUB_ID]

    def usage(self) -> str:
        return (
            "Train with AesCoder's agentic reward (`recipes/aescoder_grpo.py`):\n\n```bash\naccelerate launch "
            "--config_file recipes/accelerate_configs/zero2.yaml recipes/aescoder_grpo.py \\\n    --config "
            "recipes/configs/aescoder_grpo_paper.yaml --dataset_name ORG/NAME\n```"
        )

    def license_note(self) -> str:
        return (
            "Derived from [HuggingFaceM4/WebSight](https://huggingface.co/datasets/HuggingFaceM4/WebSight) v0.2 "
            "(CC BY 4.0; synthetic ideas and pages generated by LLMs). Only the ideas are kept."
        )


def build_websight_prompts(**kwargs) -> Dataset:
    """Build WebSight v0.2 web-design prompts; `kwargs` are the fields of [`WebSightPromptsArguments`]."""
    return WebSightPromptsBuilder(WebSightPromptsArguments(**kwargs)).build()


if __name__ == "__main__":
    WebSightPromptsBuilder.main()
