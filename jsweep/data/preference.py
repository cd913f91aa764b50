"""Preference-pair loaders for DPO: upstream rows -> PreferenceExamples (prompt turns, chosen, rejected).

Same contract as :mod:`jsweep.data.loaders`: a bad record raises a DataError naming the file,
the record (or line) and the field, unless ``on_error == "skip"``, in which case it is dropped
and counted. A pair whose chosen and rejected replies are identical is a bad record (it carries
no preference).
"""

from __future__ import annotations

from typing import Any

from jsweep.data.loaders import ROLE_ALIASES, convert_rows, id_field, index_ids, text_field
from jsweep.data.protocols import loader
from jsweep.data.records import LoadReport, Message, PreferenceExample
from jsweep.data.sources import Row
from jsweep.errors import DataError


def _reply(row: Row, name: str) -> str:
    """A reply field: plain text, or a ``{from, value}`` turn (hh-rlhf-12k-ja)."""
    if name not in row.data:
        raise row.error(
            f"missing field (record has: {', '.join(sorted(row.data)) or 'nothing'})", field=name, kind="missing field"
        )
    value = row.data[name]
    if isinstance(value, dict):
        if "value" not in value and "content" not in value:
            raise row.error("expected a {from, value} turn", field=name, kind="bad turn")
        value = value.get("value", value.get("content"))
    if not isinstance(value, str):
        raise row.error(f"expected text, got {type(value).__name__}", field=name, kind="expected text")
    if not value.strip():
        raise row.error("empty text", field=name, kind="empty text")
    return value


def _turns(row: Row, name: str) -> list[Message]:
    """A conversation field: a list of ``{from, value}`` (or ``{role, content}``) turns ending with the user's."""
    if name not in row.data:
        raise row.error(
            f"missing field (record has: {', '.join(sorted(row.data)) or 'nothing'})", field=name, kind="missing field"
        )
    value = row.data[name]
    if not isinstance(value, list) or not value:
        raise row.error("expected a non-empty list of turns", field=name, kind="bad turns")
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise row.error(f"turn {i}: expected a {{from, value}} object", field=name, kind="bad turns")
        role = ROLE_ALIASES.get(str(turn.get("from", turn.get("role", ""))).lower())
        content = turn.get("value", turn.get("content"))
        if role is None:
            raise row.error(
                f"turn {i}: unknown speaker {turn.get('from', turn.get('role'))!r} "
                f"(expected human/gpt or user/assistant)",
                field=name,
                kind="bad turns",
            )
        if not isinstance(content, str) or not content.strip():
            raise row.error(f"turn {i}: empty text", field=name, kind="empty text")
        out.append(Message(role, content))
    if out[-1].role != "user":
        raise row.error(
            "the conversation must end with a human turn (the prompt of the replies)", field=name, kind="bad turns"
        )
    return out


def _pair(
    row: Row, ex_id: str, prompt: list[Message], chosen_key: str, rejected_key: str, **meta: Any
) -> PreferenceExample:
    chosen, rejected = _reply(row, chosen_key), _reply(row, rejected_key)
    if chosen.strip() == rejected.strip():
        raise row.error("chosen and rejected replies are identical", field=rejected_key, kind="identical replies")
    return PreferenceExample(id=ex_id, prompt=prompt, chosen=chosen, rejected=rejected, meta=meta)


@loader(records="preference")
def load_hh_rlhf(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[PreferenceExample]:
    """llm-jp/hh-rlhf-12k-ja (hh-rlhf-12k-ja.jsonl, as llm-jp-dpo's train.py reads it): ``conversations``
    [{from: human|gpt, value}] ending with a human turn, ``chosen`` and ``rejected`` plain strings (the
    two replies), ``source`` the hh-rlhf group (harmless-base, helpful-base, helpful-online,
    helpful-rejection-sampled), kept as ``meta["source"]``. A ``{from, value}`` reply is read too. No id
    field: the record index (line) is the id."""
    ids = index_ids(rows)

    def convert(row: Row) -> PreferenceExample:
        prompt = _turns(row, "conversations")
        meta = {"turns": sum(m.role == "user" for m in prompt)}
        if isinstance(row.data.get("source"), str):
            meta["source"] = row.data["source"]
        return _pair(row, ids(row), prompt, "chosen", "rejected", **meta)

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="index")


@loader(records="preference")
def load_chatbot_arena(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[PreferenceExample]:
    """cyberagent/chatbot-arena-ja-calm2-7b-chat-experimental: prompt, chosen, rejected (all text)."""
    ids = index_ids(rows)

    def convert(row: Row) -> PreferenceExample:
        return _pair(row, ids(row), [Message("user", text_field(row, "prompt"))], "chosen", "rejected")

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="index")


# The keys dataset.field_map may map for the generic preference loader.
PREFERENCE_FIELDS = {
    "prompt": "the prompt: text, or a list of {from, value} / {role, content} turns ending with the user's",
    "chosen": "the preferred reply (text or a {from, value} turn)",
    "rejected": "the dispreferred reply (text or a {from, value} turn)",
    "id": "a unique record id (optional: the record index otherwise)",
    "system": "an optional system prompt",
}


@loader(records="preference", field_map=PREFERENCE_FIELDS)
def load_preference(
    rows: list[Row], *, on_error: str, report: LoadReport, field_map: dict[str, str] | None = None, **_: Any
) -> list[PreferenceExample]:
    """Any local preference data (JSON / JSON lines / Parquet) through ``dataset.field_map``, e.g.
    ``{prompt: question, chosen: good, rejected: bad, id: qid}``; unmapped keys default to the same name."""
    fm = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", **(field_map or {})}
    unknown = sorted(set(fm) - set(PREFERENCE_FIELDS))
    if unknown:
        raise DataError(f"dataset.field_map: unknown key '{unknown[0]}' (valid keys: {', '.join(PREFERENCE_FIELDS)})")
    ids = index_ids(rows)
    id_key = fm.get("id")

    def convert(row: Row) -> PreferenceExample:
        ex_id = id_field(row, id_key) if id_key else ids(row)
        value = row.data.get(fm["prompt"])
        prompt = (
            _turns(row, fm["prompt"]) if isinstance(value, list) else [Message("user", text_field(row, fm["prompt"]))]
        )
        system = text_field(row, fm["system"], allow_empty=True) if "system" in fm and fm["system"] in row.data else ""
        if system and prompt[0].role != "system":
            prompt.insert(0, Message("system", system))
        return _pair(row, ex_id, prompt, fm["chosen"], fm["rejected"])

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name=id_key or "index")
