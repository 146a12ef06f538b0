"""Small datasets bundled with `trl_ext`."""

import json
from importlib import resources

CODE_PROBLEMS_FILE = "code_problems.jsonl"


def load_code_problems(system_prompt: str | None = None):
    """
    Load the 20 bundled HumanEval problems (MIT License, see `trl_ext/data/README.md`) as a conversational dataset.

    Args:
        system_prompt (`str`, *optional*):
            Optional system message prepended to each prompt.

    Returns:
        `datasets.Dataset`: Columns `prompt` (list of messages asking for the function in one fenced ```` ```python ````
        block, the format [`~trl_ext.rewards.code_format_reward`] expects), `test_cases` (list of standalone assert
        strings), `reference_solution`, `task_id` and `entry_point`.
    """
    from datasets import Dataset

    rows = []
    text = resources.files(__name__).joinpath(CODE_PROBLEMS_FILE).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        problem = json.loads(line)
        request = (
            "Complete the following Python function. Reply with the complete function, including the imports it "
            "needs, in a single ```python code block at the end of your answer.\n\n"
            f"```python\n{problem['prompt']}```"
        )
        messages = [{"role": "user", "content": request}]
        if system_prompt is not None:
            messages.insert(0, {"role": "system", "content": system_prompt})
        rows.append(
            {
                "prompt": messages,
                "test_cases": problem["test_cases"],
                "reference_solution": problem["reference_solution"],
                "task_id": problem["task_id"],
                "entry_point": problem["entry_point"],
            }
        )
    return Dataset.from_list(rows)
