"""Loaders on the shipped fixtures (exact conversations), malformed files, on_error=skip, subsets,
digests, prompt formats, pre-flight checks and MLflow dataset provenance. Offline, CPU, no torch."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest

from jsweep.data.formats import ALPACA_JA, HEADER_NO_INPUT, HEADER_WITH_INPUT, LLMJP
from jsweep.data.load import load_examples, preflight, split_train_eval, subset
from jsweep.data.records import Example, Message, digest_examples
from jsweep.data.sources import FIXTURES
from jsweep.errors import DataError, PreflightError
from jsweep.schema import DatasetSpec
from jsweep.validate import validate_cell
from tests.support.paths import MALFORMED
from tests.support.specs import spec_for
from tests.support.store import seed_store

INSTRUCT = FIXTURES / "instruct"


def ds(
    loader: str, *, fixture: str | None = None, path: str | Path | None = None, name: str | None = None, **kw
) -> DatasetSpec:
    """A DatasetSpec reading a shipped fixture (source=fixture) or a file (source=path)."""
    source = "path" if path is not None else "fixture"
    return DatasetSpec(
        name=name or loader,
        loader=loader,
        fixture=fixture,
        path=None if path is None else str(path),
        source=source,
        **kw,
    )


def load(loader: str, **kw):
    return load_examples(ds(loader, **kw), builtin_model=True)


def by_id(examples):
    return {e.id: e for e in examples}


def turns(ex: Example) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in ex.messages]


@functools.cache
# --------------------------------------------------------------------------- upstream formats -> conversations

def test_dolly_yields_instruction_input_output():
    data = load("dolly", fixture="instruct/dolly_ja.json")
    assert len(data.examples) == 48 and data.records == "sft"
    ex = by_id(data.examples)
    assert turns(ex["0"]) == [
        ("user", "富士山の標高はどれくらいですか？"),
        ("assistant", "富士山の標高は3,776メートルで、日本で最も高い山です。"),
    ]
    assert ex["0"].input == "" and ex["0"].meta["category"] == "open_qa"
    assert turns(ex["1"])[0] == ("user", "この文章によると、図書館の休館日はいつですか？")
    assert ex["1"].input.startswith("市立中央図書館は毎週月曜日と毎月最終木曜日を休館日")
    assert sum(1 for e in data.examples if e.input) == 15  # README: 15 with a non-empty input


def test_ichikara_yields_text_output():
    ex = by_id(load("ichikara", fixture="instruct/ichikara.json").examples)
    assert len(ex) == 44
    assert turns(ex["ichikara-instruction-003-001-1-0002"]) == [
        ("user", "「役不足」と「力不足」の違いを教えてください。"),
        (
            "assistant",
            "「役不足」は、本人の力量に比べて与えられた役目が軽すぎることを意味します。一方、「力不足」は、役目に対して"
            "本人の力量が足りないことを表します。謙遜のつもりで「役不足ですが」と言うと逆の意味になってしまうため、"
            "その場合は「力不足ですが」を使うのが適切です。",
        ),
    ]


def test_alpaca_yields_instruction_input_output_with_index_ids():
    data = load("alpaca", fixture="instruct/alpaca_ja.json")
    assert [e.id for e in data.examples] == [str(i) for i in range(42)]
    ex = by_id(data.examples)["1"]
    assert turns(ex) == [
        ("user", "次の文を過去形に書き換えてください。"),
        ("assistant", "私は毎朝公園を散歩しました。"),
    ]
    assert ex.input == "私は毎朝公園を散歩します。"


OASST_FIXTURE = "instruct/oasst1_89k_ja.json"


def test_oasst1_89k_ja_fixture_has_the_real_file_quirks():
    """The shipped fixture is laid out as kunishou/oasst1-89k-ja is: one JSON array, roots with
    parent_id the string "nan", text_ja beside text, ng_translation "0"/"1", and no rank, deleted or
    review_result."""
    raw = json.loads((INSTRUCT / "oasst1_89k_ja.json").read_text())
    roots = [m for m in raw if m["role"] == "prompter" and m["parent_id"] == "nan"]
    assert len(roots) == 16 and not any(m["parent_id"] is None for m in raw)
    assert not any(k in m for m in raw for k in ("rank", "deleted", "review_result"))
    assert {m["ng_translation"] for m in raw} == {"0", "1"}
    assert all(m["text_ja"] == m["text"] for m in raw if m["ng_translation"] == "1")


def test_oasst_reads_nan_roots_drops_untranslated_and_gives_every_reply_its_thread():
    raw = json.loads((INSTRUCT / "oasst1_89k_ja.json").read_text())
    msgs = {m["message_id"]: m for m in raw}
    data = load("oasst", fixture=OASST_FIXTURE)
    ng = {m["message_id"] for m in raw if m["ng_translation"] == "1"}
    below_ng = {m["message_id"] for m in raw if m["parent_id"] in ng}
    # every assistant reply is one conversation (the publisher's conversion), except the untranslated ones
    replies = {m["message_id"] for m in raw if m["role"] == "assistant"} - ng - below_ng
    assert {e.id for e in data.examples} == replies and len(data.examples) == 45
    assert data.report.read == 69 and data.report.unit == "messages"
    assert data.report.dropped == {
        "untranslated (ng_translation)": 2,
        "parent dropped: untranslated (ng_translation)": 1,
    }
    for ex in data.examples:
        path, cur = [], ex.id
        while cur != "nan":
            path.append(msgs[cur])
            cur = msgs[cur]["parent_id"]
        assert [m.content for m in ex.messages] == [m["text_ja"] for m in reversed(path)]
        assert [m.role for m in ex.messages] == ["user", "assistant"] * (len(ex.messages) // 2)
    assert sum(1 for e in data.examples if len(e.messages) > 2) == 10
    untranslated = [m["text_ja"] for m in raw if m["message_id"] in ng]
    assert not any(t in m.content for e in data.examples for m in e.messages for t in untranslated)
    prov = data.provenance()
    assert prov["dropped"] == 3 and prov["dropped_by_reason"] == data.report.dropped


def test_oasst_reads_openassistants_own_layout_with_ranks(tmp_path):
    """OpenAssistant's jsonl (parent_id null, rank, deleted, review_result): one best-ranked
    conversation per tree; deleted and rejected messages drop with their subtrees, all counted."""
    rows = [
        {"message_id": "r", "parent_id": None, "role": "prompter", "text_ja": "質問", "created_date": "1"},
        {
            "message_id": "a0",
            "parent_id": "r",
            "role": "assistant",
            "text_ja": "最良",
            "rank": 0,
            "deleted": True,
            "created_date": "2",
        },
        {"message_id": "a1", "parent_id": "r", "role": "assistant", "text_ja": "次点", "rank": 1, "created_date": "3"},
        {
            "message_id": "a2",
            "parent_id": "r",
            "role": "assistant",
            "text_ja": "三位",
            "rank": 2,
            "review_result": False,
            "created_date": "4",
        },
        {"message_id": "p2", "parent_id": "a1", "role": "prompter", "text_ja": "続き", "created_date": "5"},
        {"message_id": "b0", "parent_id": "p2", "role": "assistant", "text_ja": "答え", "rank": 0, "created_date": "6"},
        {"message_id": "b1", "parent_id": "p2", "role": "assistant", "text_ja": "別解", "rank": 1, "created_date": "7"},
    ]
    f = tmp_path / "oasst.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    data = load("oasst", path=f)
    assert [turns(e) for e in data.examples] == [
        [("user", "質問"), ("assistant", "次点"), ("user", "続き"), ("assistant", "答え")]
    ]
    assert data.report.dropped == {"deleted message": 1, "failed review": 1, "not on the best-ranked path": 1}


def test_oasst_english_text_keeps_the_untranslated_rows():
    english = load("oasst", fixture=OASST_FIXTURE, field_map={"text": "text"})
    assert len(english.examples) == 47 and english.report.dropped == {}
    assert english.examples[0].messages[0].content.isascii()


def test_oasst2_preset_reads_the_oasst_format():
    spec = spec_for("dataset=oasst2", "eval=[]")
    assert spec.dataset.hub_id == "kunishou/oasst2-135k-ja" and spec.dataset.loader == "oasst"
    assert len(load_examples(spec.dataset, builtin_model=True).examples) == 45


def test_a_preset_that_drops_everything_is_an_error_that_says_why(tmp_path):
    raw = json.loads((INSTRUCT / "oasst1_89k_ja.json").read_text())
    for m in raw:
        m["ng_translation"] = "1"
    f = tmp_path / "all_ng.json"
    f.write_text(json.dumps(raw, ensure_ascii=False))
    with pytest.raises(DataError) as err:
        load("oasst", path=f, on_error="skip")
    msg = str(err.value)
    assert "no usable records: read 69 messages" in msg and "untranslated (ng_translation)" in msg, msg
    bad = [{"instruction": "", "input": "", "output": "x", "category": "open_qa", "index": "0"}]
    (tmp_path / "d.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"dropped them all \(1 empty text \(instruction\)\)"):
        load("dolly", path=tmp_path / "d.json", on_error="skip")


JASTER_TRAIN = INSTRUCT / "jaster" / "tuning" / "train"


def test_jaster_fixture_is_laid_out_as_llm_jp_eval_writes_it():
    files = sorted(p.name for p in JASTER_TRAIN.iterdir())
    assert files == ["chabsa.json", "jcommonsenseqa.json", "jemhopqa.json", "jnli.json"]
    for p in JASTER_TRAIN.iterdir():
        text = p.read_text()
        raw = json.loads(text)
        assert text.startswith('[\n    {\n        "ID": ')  # json.dump(indent=4)
        assert [r["ID"] for r in raw] == [f"{p.stem}-{i}" for i in range(len(raw))]
        assert all(list(r) == ["ID", "instruction", "input", "output", "text"] for r in raw)


def test_jaster_yields_instruction_input_output_and_matches_its_text_field():
    raw = [r for p in sorted(JASTER_TRAIN.iterdir()) for r in json.loads(p.read_text())]
    data = load("jaster", fixture="instruct/jaster/tuning/train")
    ex = by_id(data.examples)
    assert len(ex) == 44 and ex["jnli-0"].meta["task"] == "jnli"
    jnli0 = next(r for r in raw if r["ID"] == "jnli-0")
    assert turns(ex["jnli-0"]) == [("user", jnli0["instruction"]), ("assistant", "entailment")]
    assert ex["jnli-0"].input == "前提：白い犬が芝生の上でボールを追いかけている。\n仮説：動物が屋外で遊んでいる。"
    # jaster's `text` is the alpaca-ja prompt + output: the alpaca_ja format reproduces it exactly
    for rec in raw:
        prompt, completion = ALPACA_JA.render(ex[rec["ID"]])
        assert prompt + completion == rec["text"], rec["ID"]


def test_jaster_reads_a_tuning_train_directory_and_refuses_dev(tmp_path):
    train = tmp_path / "tuning" / "train"
    shutil.copytree(JASTER_TRAIN, train)
    data = load("jaster", path=train)
    assert len(data.examples) == 44
    dev = tmp_path / "tuning" / "dev"
    shutil.copytree(train, dev)
    with pytest.raises(DataError, match=r"dev split file.*tuning/train"):
        load("jaster", path=tmp_path / "tuning")


def test_hh_rlhf_12k_ja_replies_are_plain_strings_with_a_source():
    raw = [json.loads(line) for line in (INSTRUCT / "hh_rlhf_ja.jsonl").read_text().splitlines()]
    assert all(isinstance(r["chosen"], str) and isinstance(r["rejected"], str) for r in raw)
    assert {r["source"] for r in raw} == {
        "harmless-base",
        "helpful-base",
        "helpful-online",
        "helpful-rejection-sampled",
    }
    data = load("hh_rlhf", fixture="instruct/hh_rlhf_ja.jsonl")
    first = data.examples[0]
    assert first.chosen == raw[0]["chosen"] and first.rejected == raw[0]["rejected"]
    assert first.meta["source"] == raw[0]["source"]


def test_generic_with_field_map_reads_the_synthetic_seeds():
    data = load(
        "generic",
        fixture="instruct/synthetic_seeds.jsonl",
        field_map={"instruction": "question", "output": "answer", "id": "id"},
    )
    ex = by_id(data.examples)
    assert len(ex) == 40
    assert turns(ex["seed-0001"]) == [
        ("user", "一年は何日ありますか？"),
        ("assistant", "通常は365日で、うるう年は366日です。"),
    ]
    assert ex["seed-0001"].meta == {"source": "seed"}


def test_generic_reads_parquet_and_chat_messages(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_pylist([{"q": "質問一", "a": "答え一"}, {"q": "質問二", "a": "答え二"}]), tmp_path / "d.parquet"
    )
    data = load("generic", path=tmp_path / "d.parquet", field_map={"instruction": "q", "output": "a"})
    assert [turns(e) for e in data.examples] == [
        [("user", "質問一"), ("assistant", "答え一")],
        [("user", "質問二"), ("assistant", "答え二")],
    ]
    assert [e.id for e in data.examples] == ["0", "1"]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps(
            {
                "conv": [
                    {"role": "system", "content": "丁寧に"},
                    {"role": "user", "content": "やあ"},
                    {"role": "assistant", "content": "こんにちは"},
                    {"role": "user", "content": "元気？"},
                    {"role": "assistant", "content": "元気です"},
                ]
            },
            ensure_ascii=False,
        )
        + "\n"
    )
    ex = load("generic", path=chat, field_map={"messages": "conv"}).examples[0]
    assert [m.role for m in ex.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.target == "元気です"


# --------------------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    "loader, name, extra, where, field, problem",
    [
        ("dolly", "dolly_empty_output.json", {}, "record 2", "output", "empty text"),
        ("ichikara", "ichikara_missing_output.json", {}, "record 1", "output", "missing field"),
        ("jaster", "jaster_duplicate_id.json", {}, "record 2", "ID", "duplicate id 'jemhopqa-0' (first seen at"),
        ("alpaca", "alpaca_bad_lines.jsonl", {}, "line 3", None, "not valid JSON"),
        (
            "generic",
            "generic_missing_answer.jsonl",
            {"field_map": {"instruction": "question", "output": "answer", "id": "id"}},
            "line 2",
            "answer",
            "missing field",
        ),
        ("oasst", "oasst_duplicate_id.jsonl", {}, "line 3", "message_id", "duplicate id 'm2'"),
        ("dolly", "dolly_not_json.json", {}, "line 3", None, "not valid JSON"),
    ],
)
def test_malformed_record_error_names_file_record_and_field(loader, name, extra, where, field, problem):
    path = MALFORMED / name
    with pytest.raises(DataError) as err:
        load(loader, path=path, **extra)
    msg = str(err.value)
    assert str(path) in msg and where in msg and problem in msg, msg
    if field:
        assert f"field '{field}'" in msg, msg
    assert "\n" not in msg


def test_skip_drops_bad_records_and_counts_why():
    data = load("alpaca", path=MALFORMED / "alpaca_bad_lines.jsonl", on_error="skip")
    assert [e.id for e in data.examples] == ["1", "2", "4", "6"]  # ids: line numbers
    assert data.report.read == 6 and data.report.kept == 4
    assert data.report.dropped == {"not valid JSON": 1, "empty text (instruction)": 1}
    assert any("line 3" in e for e in data.report.errors) and any("line 5" in e for e in data.report.errors)
    prov = data.provenance()
    assert prov["dropped"] == 2 and prov["dropped_by_reason"] == data.report.dropped

    dup = load("jaster", path=MALFORMED / "jaster_duplicate_id.json", on_error="skip")
    assert [e.id for e in dup.examples] == ["jemhopqa-0", "jemhopqa-1"] and dup.report.dropped == {
        "duplicate id (ID)": 1
    }
    miss = load("ichikara", path=MALFORMED / "ichikara_missing_output.json", on_error="skip")
    assert len(miss.examples) == 2 and miss.report.dropped == {"missing field (output)": 1}


def test_a_file_with_nothing_usable_is_an_error(tmp_path):
    f = tmp_path / "empty.json"
    f.write_text("[]")
    with pytest.raises(DataError, match="no usable records"):
        load("dolly", path=f)
    with pytest.raises(DataError, match="file not found"):
        load("dolly", path=tmp_path / "nope.json")


def test_missing_local_only_dataset_says_to_set_the_path():
    spec = DatasetSpec(name="ichikara", loader="ichikara", source="auto", fixture="instruct/ichikara.json")
    with pytest.raises(DataError, match=r"set dataset.path="):
        load_examples(spec, builtin_model=False)


def test_bad_record_stops_the_sweep_before_anything_runs():
    from jsweep.sweep import plan

    spec = spec_for("dataset=dolly", "eval=[]", f"dataset.path={MALFORMED / 'dolly_empty_output.json'}")
    with pytest.raises(PreflightError) as err:
        plan([spec])
    assert "dolly_empty_output.json" in str(err.value) and "record 2" in str(err.value)
    assert "field 'output'" in str(err.value)


# --------------------------------------------------------------------------- subsets, digests, splits


def test_subset_is_reproducible_nested_and_in_order():
    data = load("dolly", fixture="instruct/dolly_ja.json").examples
    a, b = subset(data, 10, 0), subset(data, 10, 0)
    assert [e.id for e in a] == [e.id for e in b]
    assert [e.id for e in subset(data, 10, 1)] != [e.id for e in a]
    assert {e.id for e in a} <= {e.id for e in subset(data, 20, 0)}  # learning curves add data
    order = [e.id for e in data]
    assert [e.id for e in a] == sorted((e.id for e in a), key=order.index)
    assert subset(data, 100, 0) == data and subset(data, None, 0) == data


def test_dataset_n_and_seed_select_the_subset_and_change_the_digest():
    full = load("dolly", fixture="instruct/dolly_ja.json")
    ten = load("dolly", fixture="instruct/dolly_ja.json", n=10, seed=0)
    again = load("dolly", fixture="instruct/dolly_ja.json", n=10, seed=0)
    other = load("dolly", fixture="instruct/dolly_ja.json", n=10, seed=1)
    assert len(ten.examples) == 10 and ten.digest == again.digest
    assert len({full.digest, ten.digest, other.digest}) == 3


def test_digest_changes_when_the_data_changes(tmp_path):
    src = INSTRUCT / "dolly_ja.json"
    copy = tmp_path / "dolly.json"
    shutil.copy(src, copy)
    same = load("dolly", path=copy).digest
    assert same == load("dolly", fixture="instruct/dolly_ja.json").digest  # content, not location
    recs = json.loads(src.read_text())
    recs[5]["output"] += "。"
    copy.write_text(json.dumps(recs, ensure_ascii=False))
    assert load("dolly", path=copy).digest != same
    recs = json.loads(src.read_text())
    recs[0], recs[1] = recs[1], recs[0]
    copy.write_text(json.dumps(recs, ensure_ascii=False))
    assert load("dolly", path=copy).digest != same  # order matters too
    ex = Example("1", [Message("user", "a"), Message("assistant", "b")])
    assert digest_examples([ex]) != digest_examples([Example("1", [Message("user", "a"), Message("assistant", "c")])])


def test_dataset_n_beyond_a_local_file_is_refused(tmp_path):
    shutil.copy(INSTRUCT / "dolly_ja.json", tmp_path / "dolly.json")
    with pytest.raises(DataError, match=r"dataset.n=100 is more than the 48 usable records .*choose n <= 48"):
        load("dolly", path=tmp_path / "dolly.json", n=100)
    assert len(load("dolly", path=tmp_path / "dolly.json", n=48).examples) == 48


def test_dataset_n_beyond_the_fixture_is_capped_with_a_label():
    data = load("dolly", fixture="instruct/dolly_ja.json", n=10000)
    prov = data.provenance()
    assert prov["n"] == 48 and prov["n_requested"] == 10000 and "capped to the 48 records" in prov["capped"]


def test_a_grid_of_sizes_that_give_the_same_data_is_refused_before_anything_runs(tmp_path):
    from jsweep.sweep import plan

    shutil.copy(INSTRUCT / "dolly_ja.json", tmp_path / "dolly.json")
    specs = [spec_for("dataset=jaster", "eval=[]", f"dataset.n={n}") for n in (10, 100, 1000)]
    with pytest.raises(PreflightError) as err:
        plan(specs)
    msg = str(err.value)
    assert "dataset.n=1000 gives the same 44 records as dataset.n=100" in msg, msg
    assert "dataset.n=10 " not in msg
    local = [
        spec_for("dataset=dolly", "eval=[]", f"dataset.path={tmp_path / 'dolly.json'}", f"dataset.n={n}")
        for n in (10, 100)
    ]
    with pytest.raises(PreflightError, match="dataset.n=100 is more than the 48 usable records"):
        plan(local)


def test_split_is_seeded_and_disjoint():
    data = load("ichikara", fixture="instruct/ichikara.json").examples
    tr, ev = split_train_eval(data, 0.1, 0)
    assert len(ev) == 4 and len(tr) == 40 and not {e.id for e in tr} & {e.id for e in ev}
    assert [e.id for e in ev] == [e.id for e in split_train_eval(data, 0.1, 0)[1]]
    assert split_train_eval(data, 0.0, 0) == (data, [])


# --------------------------------------------------------------------------- prompt formats


def test_alpaca_and_llmjp_formats_render_input_and_turns():
    ex = Example("x", [Message("user", "要約して"), Message("assistant", "短く")], input="長い文章")
    p, c = ALPACA_JA.render(ex)
    assert p == f"{HEADER_WITH_INPUT}\n\n### 指示:\n要約して\n\n### 入力:\n長い文章\n\n### 応答:\n" and c == "短く"
    p, _ = LLMJP.render(ex)
    assert p == f"{HEADER_NO_INPUT}\n\n### 指示:\n要約して\n\n長い文章\n\n### 応答:\n"

    class Tok:
        eos_token = "</s>"

    multi = Example(
        "y", [Message("user", "一"), Message("assistant", "二"), Message("user", "三"), Message("assistant", "四")]
    )
    assert LLMJP.render(multi, tokenizer=Tok())[0] == (
        f"{HEADER_NO_INPUT}\n\n### 指示:\n一\n\n### 応答:\n二</s>\n\n### 指示:\n三\n\n### 応答:\n"
    )
    assert ALPACA_JA.render(multi)[0].endswith("### 指示:\n三\n\n### 応答:\n")
    with pytest.raises(ValueError, match="end with a user turn"):
        ALPACA_JA.prompt([Message("user", "a"), Message("assistant", "b")])


# --------------------------------------------------------------------------- presets and pre-flight

PRESETS = {
    "dolly": 48,
    "dolly_10k": 48,
    "ichikara": 44,
    "oasst": 45,
    "oasst2": 45,
    "alpaca_ja": 42,
    "jaster": 44,
    "generic": 40,
    "synthetic": 40,
    "hh_rlhf_ja": 40,
    "chatbot_arena_ja": 40,
    "preference": 40,
    "dolly_ichikara_oasst": 137,
    "jaster_oasst_dolly": 137,
}


def test_every_preset_composes_validates_and_loads_on_the_embedded_default():
    from jsweep.paths import CONF_DIR

    names = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))
    assert set(PRESETS) <= set(names)
    for name in names:
        method = "method=dpo_lora" if name in ("hh_rlhf_ja", "chatbot_arena_ja", "preference") else "method=sft_lora"
        spec = spec_for(f"dataset={name}", method, "eval=[]")
        assert validate_cell(spec) == [], name
        assert spec.dataset.license, name
        prov = preflight(spec.dataset, builtin_model=True)
        if name in PRESETS:
            assert prov["n"] == PRESETS[name], name


def test_preset_files_comment_every_key():
    from jsweep.paths import CONF_DIR

    for path in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        for line in path.read_text().splitlines():
            if line and not line.startswith((" ", "#")) and ":" in line and not line.startswith("defaults"):
                assert "#" in line, f"{path.name}: {line}"


def test_validate_cell_rejects_field_map_for_fixed_formats_and_bad_budgets():
    spec = spec_for("dataset=dolly", "eval=[]", "+dataset.field_map.instruction=q")
    assert any("field_map is only read" in p for p in validate_cell(spec))
    spec = spec_for("dataset=generic", "eval=[]", "+dataset.field_map.answer=x")
    assert any("unknown key 'dataset.field_map.answer'" in p for p in validate_cell(spec))
    spec = spec_for("dataset=dolly", "eval=[]", "dataset.budget=hours:3")
    assert any("dataset.budget must be" in p for p in validate_cell(spec))


# --------------------------------------------------------------------------- MLflow dataset provenance


def _dataset_inputs(uri: str, run_id: str):
    from mlflow.tracking import MlflowClient

    run = MlflowClient(uri).get_run(run_id)
    return [(i.dataset, {t.key: t.value for t in i.tags}) for i in run.inputs.dataset_inputs]


def test_log_dataset_input_records_source_n_and_digest_in_sqlite_store(tmp_path):
    import mlflow

    from jsweep.data.provenance import log_dataset_input

    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("prov", artifact_location=str(tmp_path / "artifacts"))
    runs = {}
    for key, overrides in {"full": (), "sub": ("dataset.n=10",), "sub1": ("dataset.n=10", "data_seed=1")}.items():
        spec = spec_for("dataset=dolly", "eval=[]", *overrides)
        data = load_examples(spec.dataset, builtin_model=True)
        with mlflow.start_run(experiment_id=exp) as run:
            log_dataset_input(mlflow, data, spec)
        runs[key] = (run.info.run_id, data)
    digests = set()
    for run_id, data in runs.values():
        [(dataset, tags)] = _dataset_inputs(uri, run_id)
        assert dataset.name == "dolly" and dataset.digest == data.digest[:32]
        assert json.loads(dataset.source)["uri"].endswith("instruct/dolly_ja.json")
        assert tags["mlflow.data.context"] == "training" and tags["jsweep.digest"] == data.digest
        assert tags["jsweep.n"] == str(len(data.examples)) and tags["jsweep.source_kind"] == "fixture"
        assert "CC BY-SA 3.0" in tags["jsweep.license"]
        assert json.loads(dataset.profile)["num_rows"] == len(data.examples)
        digests.add(dataset.digest)
    assert len(digests) == 3  # different data never looks alike


def test_log_dataset_input_for_hub_and_mixture_sources(tmp_path):
    from mlflow.tracking import MlflowClient

    from jsweep.data.provenance import dataset_source, log_dataset_input
    from jsweep.data.sources import resolve_source

    hub = resolve_source(
        DatasetSpec(name="dolly", loader="dolly", hub_id="kunishou/databricks-dolly-15k-ja", revision="abc123"),
        builtin_model=False,
    )
    src = dataset_source(hub)
    assert src._get_source_type() == "hugging_face" and src.path == "kunishou/databricks-dolly-15k-ja"
    assert src.revision == "abc123"

    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)
    exp = client.create_experiment("mix", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(exp)
    spec = spec_for("dataset=dolly_ichikara_oasst", "eval=[]")
    data = load_examples(spec.dataset, builtin_model=True)
    log_dataset_input(client, data, spec, run_id=run.info.run_id)
    inputs = {d.name: (d, t) for d, t in _dataset_inputs(uri, run.info.run_id)}
    assert set(inputs) == {
        "dolly_ichikara_oasst",
        "dolly_ichikara_oasst/dolly",
        "dolly_ichikara_oasst/ichikara",
        "dolly_ichikara_oasst/oasst",
    }
    mix, tags = inputs["dolly_ichikara_oasst"]
    assert mix.source_type == "jsweep_mixture" and set(json.loads(mix.source)["components"]) == {
        "dolly",
        "ichikara",
        "oasst",
    }
    assert tags["jsweep.n"] == "137" and json.loads(tags["jsweep.dropped_by_reason"]) == {
        "oasst: untranslated (ng_translation)": 2,
        "oasst: parent dropped: untranslated (ng_translation)": 1,
    }
    _comp, ctags = inputs["dolly_ichikara_oasst/ichikara"]
    assert ctags["mlflow.data.context"] == "training_component" and ctags["jsweep.n"] == "44"
    assert "CC BY-NC-SA" in ctags["jsweep.license"]


def test_log_dataset_input_through_the_cell_tracker(tmp_path):
    """The exact call the cell makes: log_dataset_input(ctx.tracker, data, spec) on the cell's attached run."""
    from mlflow.tracking import MlflowClient

    from jsweep.data.provenance import log_dataset_input
    from jsweep.tracking import CellTracker

    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("cell", artifact_location=str(tmp_path / "a")))
    spec = spec_for("dataset=hh_rlhf_ja", "method=dpo_lora", "eval=[]")
    data = load_examples(spec.dataset, builtin_model=True)
    tracker = CellTracker(uri, run.info.run_id, tmp_path / "cell")
    log_dataset_input(tracker, data, spec)
    tracker.end()
    [(dataset, tags)] = _dataset_inputs(uri, run.info.run_id)
    assert dataset.name == "hh_rlhf_ja" and tags["jsweep.records"] == "preference" and tags["jsweep.n"] == "40"
    kept = json.loads((tmp_path / "cell" / "artifacts" / "data_provenance.json").read_text())
    assert kept["digest"] == data.digest and kept["records"] == "preference"
    # tracking down: a warning, the provenance stays in the cell directory, training goes on
    down = CellTracker("sqlite:////nonexistent/dir/mlflow.db", run.info.run_id, tmp_path / "cell2")
    assert log_dataset_input(down, data, spec) is None
    assert (tmp_path / "cell2" / "artifacts" / "data_provenance.json").exists()


# --------------------------------------------------------------------------- evaluation data of real models


def test_a_real_model_without_evaluation_data_is_refused_with_the_prepare_command(tmp_path):
    from jsweep.sweep import plan

    with pytest.raises(PreflightError) as err:
        plan([spec_for("model=llm-jp-3-1.8b", "dataset=dolly")])
    msg = str(err.value)
    assert "eval.llm_jp_eval: model 'llm-jp-3-1.8b' would be scored on the shipped toy fixtures" in msg, msg
    assert "python -m jsweep prepare llm-jp-eval --jglue" in msg and "set eval.jglue.data_dir" in msg, msg
    (tmp_path / "evaluation" / "test").mkdir(parents=True)
    ok = spec_for("model=llm-jp-3-1.8b", "dataset=dolly", "eval=[llm_jp_eval]", f"eval.llm_jp_eval.data_dir={tmp_path}")
    from jsweep.eval.run import check_eval_data

    assert check_eval_data(ok) == []
    assert check_eval_data(spec_for("model=tiny", "dataset=dolly")) == []  # the fixtures serve the tiny model
    assert check_eval_data(spec_for("model=llm-jp-3-1.8b", "dataset=dolly", "eval=[]")) == []


def test_the_stockmark_study_command_sets_its_evaluation_data():
    from jsweep.paths import CONF_DIR

    head = (CONF_DIR / "experiment" / "stockmark13b_datasets.yaml").read_text().splitlines()[2]
    assert "eval.jglue.data_dir=" in head and "eval.llm_jp_eval.data_dir=" in head, head


# --------------------------------------------------------------------------- seeds: training replicates, one data seed


def test_the_training_seed_leaves_the_data_alone_and_data_seed_moves_it():
    from jsweep.sweep import plan

    a, b = (spec_for("dataset=dolly", "eval=[]", "dataset.n=10", f"seed={s}") for s in (0, 1))
    assert (a.seed, b.seed) == (0, 1) and a.dataset.seed == b.dataset.seed == 0
    pa, pb = plan([a, b])
    assert pa.data["digest"] == pb.data["digest"] and pa.cell_id != pb.cell_id  # same data, two replicates
    c = spec_for("dataset=dolly", "eval=[]", "dataset.n=10", "data_seed=1")
    assert c.seed == 0 and c.dataset.seed == 1
    assert load_examples(c.dataset, builtin_model=True).digest != pa.data["digest"]
    data = load_examples(a.dataset, builtin_model=True).examples
    held = split_train_eval(data, 0.2, a.dataset.seed)[1]
    assert held == split_train_eval(data, 0.2, b.dataset.seed)[1]  # one held-out split for all seeds
    mix = spec_for("dataset=dolly_ichikara_oasst", "eval=[]", "seed=3")
    assert mix.dataset.seed == 0


def test_the_dry_run_labels_a_capped_size():
    from jsweep.sweep import format_plan, plan

    text = format_plan(plan([spec_for("dataset=dolly_10k", "eval=[]")]))
    assert "48 ex" in text and "[dataset.n=10000 capped to the 48 records of the shipped fixture]" in text


def test_the_dry_run_reports_what_a_dataset_drops():
    from jsweep.sweep import format_plan, plan

    text = format_plan(plan([spec_for("dataset=oasst", "eval=[]")]))
    assert (
        "45 ex" in text
        and ("[dropped 3 messages: 2 untranslated (ng_translation), 1 parent dropped: untranslated (ng_translation)]")
        in text
    ), text
