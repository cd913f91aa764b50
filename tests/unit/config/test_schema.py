"""The schema layer (jsweep.schema): from_dict on any dataclass, Literal choices, and loaders that
declare their record kind and field-map keys (what the planner checks a config against)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from jsweep import registries
from jsweep.compose import compose_spec, group_options
from jsweep.data.load import dataset_records, load_examples
from jsweep.errors import ConfigError
from jsweep.schema import CellSpec, Precision, Scheduler, cell_from_dict, choice_problems, choices, from_dict


@dataclass
class Inner:
    mode: Literal["fast", "exact"] = "fast"
    level: Literal[0, 1, 2] = 0


@dataclass
class Options:
    name: str
    limit: int | None = None
    switch: Literal["auto", True, False] = "auto"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_from_dict_builds_nested_dataclasses_and_converts_types():
    opts = from_dict(
        Options,
        {"name": 7, "limit": None, "switch": False, "inner": {"mode": "exact", "level": 2}, "tags": ["a", 1]},
        "eval.x",
    )
    assert opts == Options(name="7", limit=None, switch=False, inner=Inner("exact", 2), tags=["a", "1"])


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "a", "bogus": 1}, "unknown key 'eval.x.bogus' (valid keys: inner, limit, name, switch, tags)"),
        ({}, "missing key 'eval.x.name'"),
        ({"name": "a", "limit": "many"}, "eval.x.limit: expected an integer, got 'many'"),
        ({"name": "a", "inner": {"mode": "slow"}}, "eval.x.inner.mode must be one of fast, exact, got 'slow'"),
        ({"name": "a", "inner": {"level": 3}}, "eval.x.inner.level must be one of 0, 1, 2, got 3"),
        ({"name": "a", "inner": {"level": True}}, "eval.x.inner.level: expected an integer, got True"),
        ({"name": "a", "switch": 1}, "eval.x.switch must be one of auto, true, false, got 1"),
        ({"name": "a", "switch": [True]}, "eval.x.switch must be one of auto, true, false, got [True]"),
        ({"name": "a", "inner": "fast"}, "eval.x.inner: expected a mapping, got 'fast'"),
    ],
)
def test_from_dict_refuses_with_one_line_naming_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Options, data, "eval.x")
    assert str(info.value) == message


def test_choices_are_checked_at_once_or_listed_all_together():
    data = {"name": "a", "switch": "yes", "inner": {"mode": "slow"}}
    opts = from_dict(Options, data, check_choices=False)  # types only
    assert choice_problems(opts, "o") == [
        "o.switch must be one of auto, true, false, got 'yes'",
        "o.inner.mode must be one of fast, exact, got 'slow'",
    ]
    assert choice_problems(from_dict(Options, {"name": "a"})) == []
    assert choices(Precision) == ("auto", "bf16", "fp16", "fp32")


def test_a_cell_keeps_every_choice_problem_for_validation():
    """cell_from_dict converts types only, so the planner reports all of a cell's bad choices together."""
    spec = compose_spec(["train.precision=fp8", "train.scheduler=cosin", "distributed.zero_stage=4"])
    assert spec.train.precision == "fp8"
    assert choice_problems(spec) == [
        f"train.scheduler must be one of {', '.join(choices(Scheduler))}, got 'cosin'",
        "train.precision must be one of auto, bf16, fp16, fp32, got 'fp8'",
        "distributed.zero_stage must be one of 0, 1, 2, 3, got 4",
    ]


def test_a_cell_round_trips_through_its_dict():
    """cell.json holds spec.to_dict(); the cell process rebuilds the same spec from it."""
    spec = compose_spec(["launcher=slurm", "dataset=dolly_ichikara_oasst", "train.liger=false"])
    again = cell_from_dict(spec.to_dict())
    assert again == spec and isinstance(again, CellSpec) and again.train.liger is False
    assert dataclasses.is_dataclass(again.launcher.options)


def test_every_loader_declares_what_it_yields_and_the_field_map_keys_it_reads():
    declared = {}
    for name in registries.LOADERS.names():
        fn = registries.LOADERS.get(name)
        if name == "mixture":  # the composite: its records are its components'
            continue
        assert fn.records in ("sft", "preference"), name
        declared[name] = (fn.records, set(fn.field_map_keys))
    assert {n for n, (r, _) in declared.items() if r == "preference"} == {"hh_rlhf", "chatbot_arena", "preference"}
    assert {n for n, (_, keys) in declared.items() if keys} == {"generic", "oasst", "preference"}
    assert declared["oasst"][1] == {"text"}


@pytest.mark.parametrize(
    "preset", [p for p in group_options("dataset") if p not in ("generic", "preference", "synthetic")]
)
def test_the_declared_record_kind_is_what_the_loader_yields(preset):
    spec = compose_spec([f"dataset={preset}", "data_source=fixture"])
    data = load_examples(spec.dataset, builtin_model=True)
    assert data.records == dataset_records(spec.dataset)
