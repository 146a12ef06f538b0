"""Every YAML under recipes/configs/ is parsed by its recipe's own parser, as `--config` would be, unknown fields
failing."""

import glob
import importlib.util
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "recipes", "configs", "*.yaml")))
RECIPES = ("coupled_grpo", "aescoder_grpo", "aescoder_sft", "ar_grpo_c2i", "ar_grpo_t2i")


def recipe_for(config_path: str) -> str:
    name = os.path.basename(config_path)
    matches = [r for r in RECIPES if name.startswith(r + "_")]
    assert len(matches) == 1, f"{name}: no recipe (or several) claims it; name it <recipe>_<variant>.yaml"
    return matches[0]


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_is_covered():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("config_path", CONFIGS, ids=os.path.basename)
def test_config_parses_with_its_recipe(config_path, tmp_path):
    parser = load_recipe(recipe_for(config_path)).make_parser()
    argv = ["--config", config_path, "--output_dir", str(tmp_path)]
    if yaml.safe_load(open(config_path)).get("bf16"):
        argv += ["--bf16", "false"]  # the paper configs' mixed precision needs a GPU; nothing else is overridden
    parsed = parser.parse_args_and_config(argv)
    values = yaml.safe_load(open(config_path))
    # Every field of the YAML reached one of the recipe's dataclasses with the value written there.
    for key, value in values.items():
        if key in ("bf16", "output_dir"):
            continue
        holders = [p for p in parsed if hasattr(p, key)]
        assert holders, f"{key} was parsed into no dataclass"
        got = getattr(holders[0], key)
        if isinstance(got, (str, int, float, bool)) and not isinstance(value, (list, dict)):
            assert got == value or str(got) == str(value) or getattr(got, "value", None) == value, (key, got, value)


def test_an_unknown_field_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(CONFIGS[0]).read() + "\nnot_a_field: 1\n")
    parser = load_recipe(recipe_for(CONFIGS[0])).make_parser()
    with pytest.raises(ValueError, match="not_a_field"):
        parser.parse_args_and_config(["--config", str(bad), "--output_dir", str(tmp_path), "--bf16", "false"])


@pytest.mark.parametrize("task", ["c2i", "t2i"])
def test_paper_image_configs_train_on_the_paper_reward_mix(task):
    from trl_ext.rewards.image import AR_GRPO_REWARD_FUNCS, recipe_reward_funcs

    config = yaml.safe_load(
        open(os.path.join(ROOT, "recipes", "configs", f"ar_grpo_{task}_{'xl384' if task == 'c2i' else 'xl256'}.yaml"))
    )
    assert config["reward_mix"] == f"ar_grpo_{task}" and "reward_funcs" not in config

    class Args:
        reward_weights = None

    args = Args()
    funcs = recipe_reward_funcs(None, config["reward_mix"], AR_GRPO_REWARD_FUNCS, args)  # models load lazily
    assert [f.__name__ for f in funcs] == [
        "clip_score",
        "clip_score_step",
        "hps_v2",
        "hps_v2_step",
        "maniqa",
        "vlm_realism",
    ]
    assert args.reward_weights == [5.0, 1.0, 5.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="not both"):
        recipe_reward_funcs(["brightness"], config["reward_mix"], AR_GRPO_REWARD_FUNCS, Args())
    with pytest.raises(ValueError, match="reward_mix: ar_grpo_c2i"):
        recipe_reward_funcs(["clip_score", "hps_v2_step"], None, AR_GRPO_REWARD_FUNCS, Args())
