"""Mixtures (weights, upsampling, presets, components) and equal budgets (examples, tokens, steps)."""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from jsweep.data.budget import parse_budget, take, token_budget_indices
from jsweep.data.load import load_examples, split_train_eval
from jsweep.data.mixture import component_specs, largest_remainder, read_preset
from jsweep.errors import ConfigError, DataError
from jsweep.schema import DatasetSpec
from jsweep.validate import validate_cell
from tests.support.specs import spec_for

SIZES = {"dolly": 48, "ichikara": 44, "oasst": 16, "jaster": 44, "hh_rlhf_ja": 40}


def mixture(components: dict, **kw) -> DatasetSpec:
    return DatasetSpec(name="mix", loader="mixture", source="fixture", components=components, **kw)


def load(spec: DatasetSpec):
    return load_examples(spec, builtin_model=True)


def counts(data) -> Counter:
    return Counter(e.meta["component"] for e in data.examples)


@functools.cache
# --------------------------------------------------------------------------- proportions

def test_weights_with_total_n_give_exact_shares_with_upsampling():
    data = load(
        mixture(
            {
                "dolly": {"preset": "dolly", "weight": 1},
                "oasst": {"preset": "oasst", "weight": 2, "n": 16},
                "jaster": {"preset": "jaster", "weight": 1},
            },
            n=200,
        )
    )
    assert len(data.examples) == 200 and counts(data) == {"dolly": 50, "oasst": 100, "jaster": 50}
    oasst = [e for e in data.examples if e.meta["component"] == "oasst"]
    # 100 from 16 records: every record 6 times, 4 records a 7th time (seeded)
    per_origin = Counter(e.meta.get("repeat_of", e.id) for e in oasst)
    assert sorted(set(per_origin.values())) == [6, 7] and sum(v == 7 for v in per_origin.values()) == 4
    assert len({e.id for e in data.examples}) == 200  # copies get distinct ids
    assert data.components["oasst"]["share"] == 0.5 and data.components["oasst"]["available"] == 16


def test_weights_without_n_take_the_largest_mixture_without_repeats():
    data = load(
        mixture({"dolly": {"preset": "dolly", "weight": 1}, "oasst": {"preset": "oasst", "weight": 1, "n": 16}})
    )
    assert counts(data) == {"dolly": 16, "oasst": 16}  # oasst (16) limits a 50/50 mix
    assert not any("repeat_of" in e.meta for e in data.examples)


def test_shares_hold_for_uneven_totals():
    assert largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(largest_remainder(997, [0.2, 0.3, 0.5])) == 997
    data = load(
        mixture(
            {
                "dolly": {"preset": "dolly", "weight": 0.2},
                "ichikara": {"preset": "ichikara", "weight": 0.3},
                "jaster": {"preset": "jaster", "weight": 0.5},
            },
            n=77,
        )
    )
    c = counts(data)
    assert sum(c.values()) == 77 and all(
        abs(c[k] - 77 * w) < 1 for k, w in {"dolly": 0.2, "ichikara": 0.3, "jaster": 0.5}.items()
    )


def test_upsample_factors_repeat_components_in_a_concatenation():
    data = load(
        mixture(
            {
                "dolly": {"preset": "dolly"},
                "oasst": {"preset": "oasst", "upsample": 3, "n": 16},
                "ichikara": {"preset": "ichikara", "upsample": 0.5},
            }
        )
    )
    assert counts(data) == {"dolly": 48, "oasst": 48, "ichikara": 22}
    origins = Counter(e.meta.get("repeat_of") for e in data.examples if e.meta["component"] == "oasst")
    assert origins[None] == 16 and all(v == 2 for k, v in origins.items() if k)  # each oasst record 3 times
    scaled = load(mixture({"dolly": {"preset": "dolly"}, "oasst": {"preset": "oasst", "upsample": 3, "n": 16}}, n=48))
    assert counts(scaled) == {"dolly": 24, "oasst": 24}  # same 1:1 proportions, n total


def test_concatenation_preset_keeps_every_record_once():
    spec = spec_for("dataset=dolly_ichikara_oasst", "eval=[]")
    data = load(spec.dataset)
    assert counts(data) == {"dolly": 48, "ichikara": 44, "oasst": 45}
    assert sorted(e.id for e in data.examples if e.meta["component"] == "dolly") == sorted(
        f"dolly/{i}" for i in range(48)
    )
    assert data.source.kind == "mixture" and "ichikara=" in data.source.describe()


def test_mixture_is_reproducible_and_seed_dependent():
    comps = {"dolly": {"preset": "dolly", "weight": 1}, "oasst": {"preset": "oasst", "weight": 1}}
    a, b, c = load(mixture(comps, n=40)), load(mixture(comps, n=40)), load(mixture(comps, n=40, seed=1))
    assert [e.id for e in a.examples] == [e.id for e in b.examples] and a.digest == b.digest
    assert a.digest != c.digest and counts(c) == counts(a)


def test_split_keeps_copies_of_a_record_on_one_side():
    data = load(mixture({"oasst": {"preset": "oasst", "upsample": 4}, "dolly": {"preset": "dolly"}}))
    train, held = split_train_eval(data.examples, 0.2, 0)
    origin = lambda e: e.meta.get("repeat_of", e.id)  # noqa: E731
    assert held and not {origin(e) for e in train} & {origin(e) for e in held}
    assert abs(len(held) - 0.2 * len(data.examples)) <= 4


# --------------------------------------------------------------------------- components


def test_component_keys_override_the_preset_and_inherit_source_seed_on_error():
    spec = mixture(
        {"dolly": {"preset": "dolly", "n": 10, "weight": None}, "ich": {"preset": "ichikara", "n": None}},
        seed=7,
        on_error="skip",
    )
    comps = component_specs(spec)
    dolly, ich = comps["dolly"][0], comps["ich"][0]
    assert dolly.n == 10 and dolly.seed == 7 and dolly.on_error == "skip" and dolly.source == "fixture"
    assert dolly.hub_id == "kunishou/databricks-dolly-15k-ja" and ich.name == "ichikara" and ich.n is None
    assert counts(load(spec)) == {"dolly": 10, "ich": 44}


def test_presets_read_env_paths_and_extensions(monkeypatch, tmp_path):
    monkeypatch.setenv("JSWEEP_ICHIKARA_PATH", str(tmp_path / "ichikara.json"))
    assert read_preset("ichikara")["path"] == str(tmp_path / "ichikara.json")
    monkeypatch.delenv("JSWEEP_ICHIKARA_PATH")
    assert read_preset("ichikara")["path"] is None
    assert read_preset("dolly_10k")["n"] == 10000 and read_preset("dolly_10k")["loader"] == "dolly"
    assert "source" not in read_preset("dolly")  # ${data_source}: inherited from the mixture


def test_cli_overrides_reach_components():
    spec = spec_for(
        "dataset=jaster_oasst_dolly",
        "eval=[]",
        "dataset.components.jaster.weight=1",
        "dataset.components.oasst.weight=2",
        "dataset.components.dolly.weight=1",
        "dataset.n=40",
    )
    assert validate_cell(spec) == []
    assert counts(load(spec.dataset)) == {"jaster": 10, "oasst": 20, "dolly": 10}


@pytest.mark.parametrize(
    "components, message",
    [
        ({}, "no components"),
        ({"a": {"preset": "nope"}}, "unknown dataset preset 'nope'"),
        ({"a": {"preset": "dolly", "pth": "/x"}}, "unknown key 'dataset.components.a.pth'"),
        ({"a": {"preset": "dolly", "weight": 1}, "b": {"preset": "oasst"}}, "every component a weight or none"),
        ({"a": {"preset": "dolly", "weight": -1}}, "weight must be a positive number"),
        ({"a": {"preset": "dolly", "weight": 1, "upsample": 2}}, "not both"),
        ({"a": {"preset": "dolly_ichikara_oasst"}}, "cannot contain another mixture"),
        ({"a": {"name": "x"}}, "needs a preset"),
    ],
)
def test_bad_components_are_config_errors_naming_the_component(components, message):
    with pytest.raises(ConfigError, match=message):
        component_specs(mixture(components))
    cell = spec_for("dataset=dolly_ichikara_oasst", "eval=[]")
    import dataclasses

    bad = dataclasses.replace(cell, dataset=mixture(components))
    assert any(message.split("'")[0] in p for p in validate_cell(bad))


def test_mixing_preference_pairs_with_instruction_data_is_refused():
    spec = mixture({"dolly": {"preset": "dolly"}, "hh": {"preset": "hh_rlhf_ja"}})
    with pytest.raises(DataError, match="mixes preference pairs"):
        load(spec)
    cell = spec_for("dataset=dolly_ichikara_oasst", "eval=[]")
    import dataclasses

    assert any("mixes preference-pair datasets" in p for p in validate_cell(dataclasses.replace(cell, dataset=spec)))
    pairs = load(
        mixture({"hh": {"preset": "hh_rlhf_ja", "weight": 1}, "arena": {"preset": "chatbot_arena_ja", "weight": 1}})
    )
    assert pairs.records == "preference" and counts(pairs) == {"hh": 40, "arena": 40}


# --------------------------------------------------------------------------- equal budgets


def test_parse_budget():
    assert parse_budget("tokens:50000") == ("tokens", 50000) and parse_budget("tokens:50k") == ("tokens", 50000)
    assert parse_budget("steps:200") == ("steps", 200) and parse_budget("examples:1.5M") == ("examples", 1500000)
    assert parse_budget(None) is None
    for bad in ("tokens", "tokens:-3", "hours:3", "tokens:0.5"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_examples_budget_gives_every_dataset_the_same_size():
    sizes = {}
    for preset in ("dolly", "oasst", "ichikara"):
        spec = DatasetSpec(**{**read_preset(preset), "source": "fixture", "budget": "examples:30"})
        data = load(spec)
        sizes[preset] = len(data.examples)
        assert len({e.id for e in data.examples}) == 30
    assert set(sizes.values()) == {30}
    oasst = load(DatasetSpec(**{**read_preset("oasst"), "source": "fixture", "budget": "examples:60"}))
    assert sum("repeat_of" in e.meta for e in oasst.examples) == 15  # 45 records + 15 repeats
    assert oasst.digest != load(DatasetSpec(**{**read_preset("oasst"), "source": "fixture"})).digest
    mix = load(
        mixture(
            {"dolly": {"preset": "dolly", "weight": 1}, "oasst": {"preset": "oasst", "weight": 1}}, budget="examples:60"
        )
    )
    assert counts(mix) == {"dolly": 30, "oasst": 30}


def test_take_is_exact_and_marks_copies():
    data = load(DatasetSpec(**{**read_preset("oasst"), "source": "fixture"})).examples
    data = data[:16]
    out = take(data, 40, 0)
    assert len(out) == 40 and [e.id for e in out[:16]] == [e.id for e in data]
    assert out[16].id == f"{data[0].id}#2" and out[16].meta["repeat_of"] == data[0].id
    assert take(data, 5, 0) == take(data, 5, 0) and len(take(data, 5, 0)) == 5


def test_token_budget_indices_reach_the_budget_with_whole_passes_first():
    lengths = [10, 20, 30, 40]
    idx = token_budget_indices(lengths, 250, 0)
    total = sum(lengths[i] for i in idx)
    assert 250 <= total < 250 + 40
    assert sorted(idx[:4]) == [0, 1, 2, 3] and sorted(idx[4:8]) == [0, 1, 2, 3]  # a full pass before repeats
    assert idx == token_budget_indices(lengths, 250, 0) and idx != token_budget_indices(lengths, 250, 1)
    small = token_budget_indices(lengths, 35, 0)
    assert sum(lengths[i] for i in small) >= 35 and len(small) < 4


def _ctx(overrides, tmp_path, store: bool = True):
    from jsweep.job.context import CellContext
    from jsweep.tracking import NullTracker
    from tests.support.tracking import StoredRun

    if not store:  # trainer arguments only: nothing is logged
        return CellContext(spec_for(*overrides), tmp_path, NullTracker(), "cpu")
    run = StoredRun(tmp_path / f"store{len(list(tmp_path.glob('store*')))}")  # a real CellTracker, SQLite store
    ctx = CellContext(spec_for(*overrides), run.cell_dir, run.tracker, "cpu")
    ctx.stored = run
    return ctx


def test_token_budget_is_applied_to_training_rows(tmp_path):
    from jsweep.job.sft import apply_token_budget

    ctx = _ctx(("dataset=dolly", "eval=[]", "dataset.budget=tokens:1000"), tmp_path)
    rows = [{"prompt": str(i), "completion": "x"} for i in range(10)]
    out = apply_token_budget(ctx, rows, [30] * 10)
    assert len(out) == 34 and ctx.metrics["data/budget/tokens"] == 1020 and ctx.metrics["data/budget/examples"] == 34
    stored = ctx.stored.client.get_run(ctx.stored.run_id).data.metrics
    assert {k: v for k, v in stored.items() if k.startswith("data/budget/")} == {
        k: v for k, v in ctx.metrics.items() if k.startswith("data/budget/")
    }
    plain = _ctx(("dataset=dolly", "eval=[]"), tmp_path, store=False)
    assert apply_token_budget(plain, rows, [30] * 10) is rows


def test_steps_budget_sets_max_steps_and_conflicts_with_train_max_steps(tmp_path):
    from jsweep.job.sft import trainer_args

    args = trainer_args(_ctx(("dataset=dolly", "eval=[]", "dataset.budget=steps:7"), tmp_path, store=False), dict)
    assert args["max_steps"] == 7
    assert trainer_args(_ctx(("dataset=dolly", "eval=[]"), tmp_path, store=False), dict)["max_steps"] == -1
    spec = spec_for("dataset=dolly", "eval=[]", "dataset.budget=steps:7", "train.max_steps=3")
    assert any("sets the step count" in p for p in validate_cell(spec))
    spec = spec_for("dataset=dolly", "eval=[]", "dataset.budget=examples:7", "dataset.n=3")
    assert any("fixes the number of examples" in p for p in validate_cell(spec))
