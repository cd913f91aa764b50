"""The studies are the published designs: grids, sizes, methods and recipes, and each README leaves a
table of the published numbers beside which the report is read."""

from __future__ import annotations

import itertools

import pytest

from jsweep.compose import compose_spec
from tests.support.paths import ROOT


def grid(name: str) -> dict[str, list[str]]:
    import yaml

    params = yaml.safe_load((ROOT / "experiments" / name / "sweep.yaml").read_text())["hydra"]["sweeper"]["params"]
    return {k: str(v).split(",") for k, v in params.items()}


def test_the_llmjp13b_ablation_has_both_arms_and_pinned_sizes():
    g = grid("llmjp13b_data_ablation")
    assert g["method"] == ["sft_full", "sft_lora"]
    assert g["dataset"] == [
        "dolly_10k",
        "ichikara_1_5k",
        "oasst_40k",
        "dolly_ichikara_oasst",
        "jaster_oasst_dolly",
        "jaster",
    ]
    sizes = {d: compose_spec(["experiment=llmjp13b_data_ablation", f"dataset={d}"]).dataset for d in g["dataset"]}
    assert (sizes["dolly_10k"].n, sizes["ichikara_1_5k"].n, sizes["oasst_40k"].n) == (10000, 1500, 40000)
    comps = sizes["dolly_ichikara_oasst"].components
    assert {k: v["n"] for k, v in comps.items()} == {"dolly": 10000, "ichikara": 1500, "oasst": 40000}
    assert {k: v["n"] for k, v in sizes["jaster_oasst_dolly"].components.items()} == {
        "jaster": None,
        "oasst": 40000,
        "dolly": 10000,
    }


def test_the_jaster_curve_is_full_fine_tuning_over_log_spaced_sizes():
    g = grid("jaster_learning_curve")
    sizes = [int(n) for n in g["dataset.n"]]
    assert len(sizes) >= 5 and sizes == sorted(sizes)
    ratios = [b / a for a, b in itertools.pairwise(sizes)]
    assert max(ratios) / min(ratios) < 1.3  # evenly spaced on a log axis
    assert compose_spec(["experiment=jaster_learning_curve"]).method.name == "sft_full"


def test_the_open_calm_recipe():
    s = compose_spec(["experiment=opencalm7b_lora"])
    assert s.model.name == "open-calm-7b" and s.method.name == "sft_lora" and s.lr == 3e-4
    assert (s.method.lora.r, s.method.lora.alpha, s.method.lora.dropout) == (8, 16, 0.05)
    assert s.method.lora.target_modules == ["query_key_value"]
    assert s.prompt.format == "alpaca_ja" and s.prompt.train_on_inputs is True
    assert s.train.micro_batch_size * s.train.grad_accum == 128 and s.train.epochs == 3
    assert s.train.warmup_steps == 100
    tiny = compose_spec(["experiment=opencalm7b_lora", "model=tiny"])
    # the recipe keeps the model's own LoRA targets (the tiny preset's: every linear layer)
    assert tiny.method.lora.target_modules == compose_spec(["model=tiny"]).model.lora_target_modules
    assert tiny.method.lora.target_modules == [f"{m}_proj" for m in ("q", "k", "v", "o", "gate", "up", "down")]


@pytest.mark.parametrize(
    "name", ["llmjp13b_data_ablation", "jaster_learning_curve", "opencalm7b_lora", "stockmark13b_datasets"]
)
def test_each_study_readme_has_a_published_numbers_table(name):
    text = (ROOT / "experiments" / name / "README.md").read_text()
    assert "## Published numbers to compare with" in text or "## Published" in text, name


def test_every_study_config_is_a_link_to_its_sweep_file():
    for path in (ROOT / "conf" / "experiment").glob("*.yaml"):
        assert path.is_symlink() and path.resolve() == (ROOT / "experiments" / path.stem / "sweep.yaml").resolve()
