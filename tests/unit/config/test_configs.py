"""Every shipped config option composes into a valid typed spec; every key is commented."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from jsweep.compose import CONF_DIR, GROUPS, compose_spec, group_options
from jsweep.validate import validate_cell

OPTIONS = [(g, o) for g in GROUPS if g not in ("eval", "experiment") for o in group_options(g)]


def test_default_config_is_the_embedded_default():
    spec = compose_spec([])
    assert spec.model.name == "tiny" and spec.model.builtin
    assert spec.tracking.uri is None or spec.tracking.uri.startswith("sqlite")
    assert spec.method.name == "sft_lora" and spec.lr == spec.method.lr
    assert validate_cell(spec) == []


def _partner(group: str, option: str) -> list[str]:
    """DPO needs preference pairs and preference data needs DPO: validate each with its partner."""
    from jsweep.data.load import dataset_records

    spec = compose_spec([f"{group}={option}"])
    if group == "method" and spec.method.trainer == "dpo":
        return ["dataset=hh_rlhf_ja"]
    if group == "dataset" and dataset_records(spec.dataset) == "preference":
        return ["method=dpo_lora"]
    if group == "distributed" and spec.distributed.min_gpus > 1:
        return [f"resources.gpus={spec.distributed.min_gpus}"]
    return []


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group, option):
    spec = compose_spec([f"{group}={option}", *_partner(group, option)])
    assert validate_cell(spec) == []
    assert getattr(spec, group).name == option


def test_dpo_on_instruction_data_is_refused_before_anything_runs():
    problems = validate_cell(compose_spec(["method=dpo", "dataset=dolly"]))
    assert any("dpo" in p and "dolly" in p for p in problems), problems


@pytest.mark.parametrize("option", group_options("eval"))
def test_every_evaluator_composes(option):
    spec = compose_spec([f"eval=[{option}]"])
    assert list(spec.eval) == [option]
    assert validate_cell(spec) == []


@pytest.mark.parametrize("option", group_options("experiment"))
def test_every_experiment_composes(option, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "set")  # a study judged by a hosted model needs its key (checked before a run)
    spec = compose_spec([f"experiment={option}"])
    assert validate_cell(spec) == []


def test_model_presets_name_hub_ids_and_lora_targets():
    for name in group_options("model"):
        spec = compose_spec([f"model={name}"])
        assert spec.model.lora_target_modules, name
        assert spec.model.trust_remote_code is False, name
        if name != "tiny":
            assert "/" in spec.model.source and spec.model.dtype == "bfloat16", name
    assert compose_spec(["model=open-calm-7b"]).model.lora_target_modules == ["query_key_value"]
    assert compose_spec(["model=llm-jp-3-1.8b"]).model.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_the_tiny_model_brings_its_own_training_recipe_and_real_models_keep_the_shared_one():
    """conf/model/tiny.yaml sets the embedded demo's recipe (many small steps, LoRA on every linear layer) so
    that the mission grid's datasets differ; a real model composes the shared `train` defaults unchanged, and
    the command line and experiments still override the tiny recipe."""
    from dataclasses import asdict

    tiny = compose_spec([])
    assert (tiny.train.epochs, tiny.train.micro_batch_size, tiny.train.max_length) == (20, 1, 256)
    assert tiny.method.lora.target_modules == [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    ]  # fmt: skip
    real = {name: compose_spec([f"model={name}"]).train for name in group_options("model") if name != "tiny"}
    assert len(real) >= 5
    for name, train in real.items():  # conf/config.yaml's shared train section, untouched by the tiny preset
        assert train == real["llm-jp-3-1.8b"], name
        assert (train.epochs, train.micro_batch_size, train.max_length, train.grad_accum) == (1, 4, 512, 1), name
    shared, own = asdict(real["llm-jp-3-1.8b"]), asdict(tiny.train)
    assert {k for k in shared if shared[k] != own[k]} == {"epochs", "micro_batch_size", "max_length"}
    over = compose_spec(["train.epochs=3", "train.micro_batch_size=4", "train.max_length=512"]).train
    assert (over.epochs, over.micro_batch_size, over.max_length) == (3, 4, 512)  # the command line wins
    study = compose_spec(["experiment=opencalm7b_lora", "model=tiny"]).train
    assert study.epochs == 3 and study.micro_batch_size * study.grad_accum == 128  # the study's recipe wins


def test_lr_shortcut_and_nested_overrides():
    spec = compose_spec(["lr=3e-4", "method.lora.r=16", "train.epochs=3", "method=sft_lora"])
    assert spec.lr == 3e-4 and spec.method.lora.r == 16 and spec.train.epochs == 3
    assert compose_spec(["method=sft_full"]).lr == 1e-5


KEY_LINE = re.compile(r"^\s*(- )?[A-Za-z_][\w.-]*:")


@pytest.mark.parametrize("path", sorted(CONF_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_every_key_has_a_comment(path):
    inside_hydra = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("hydra:"):
            inside_hydra = True
        elif line and not line.startswith(" "):
            inside_hydra = False
        if inside_hydra or line.lstrip().startswith("#") or not KEY_LINE.match(line):
            continue
        assert "#" in line, f"{path.relative_to(CONF_DIR)}:{lineno}: key without a comment: {line.strip()}"


def test_planning_imports_no_torch():
    code = (
        "import sys\n"
        "from jsweep.compose import compose_spec\n"
        "from jsweep.sweep import plan\n"
        "cells = plan([compose_spec(['dataset=dolly']), compose_spec(['dataset=oasst', 'method=sft_full'])])\n"
        "assert len(cells) == 2\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'deepspeed') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
