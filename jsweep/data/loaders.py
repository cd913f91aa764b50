"""Record-format loaders: upstream rows -> Examples, with errors that name the file, record and field.

A loader takes the rows read from one source (see :mod:`jsweep.data.sources`) and returns
Examples. It raises :class:`DataError` for a bad record; :func:`convert_rows` applies the
``on_error`` policy (raise, or skip and count) around per-record converters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsweep.data.protocols import loader
from jsweep.data.records import Example, LoadReport, Message, Role
from jsweep.data.sources import Row
from jsweep.errors import DataError

# --------------------------------------------------------------------------- field helpers


def text_field(row: Row, name: str, *, allow_empty: bool = False) -> str:
    """Return a string field of ``row``; a missing, non-string or empty value is a DataError."""
    if name not in row.data:
        raise row.error(
            f"missing field (record has: {', '.join(sorted(row.data)) or 'nothing'})", field=name, kind="missing field"
        )
    value = row.data[name]
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise row.error(f"expected text, got {type(value).__name__}", field=name, kind="expected text")
    if not allow_empty and not value.strip():
        raise row.error("empty text", field=name, kind="empty text")
    return value


def id_field(row: Row, name: str) -> str:
    if name not in row.data or row.data[name] in (None, ""):
        raise row.error("missing id", field=name, kind="missing id")
    return str(row.data[name])


def drop_reason(exc: DataError) -> str:
    """The key a skipped record is counted under: the kind of problem and the field, e.g. 'empty text (output)'."""
    return f"{exc.kind} ({exc.field})" if exc.field else exc.kind


def index_ids(rows: list[Row]) -> Callable[[Row], str]:
    """Ids for formats without an id field: the record index (line for JSON lines), prefixed by the
    file's stem when the rows come from several files (a directory)."""
    several = len({r.file for r in rows}) > 1
    return lambda row: f"{Path(row.file).stem}-{row.index}" if several else str(row.index)


def convert_rows(
    rows: Iterable[Row], convert: Callable[[Row], Any], *, on_error: str, report: LoadReport, id_name: str = "id"
) -> list[Any]:
    """Convert rows one by one, enforcing unique ids; on_error=skip drops and counts bad rows."""
    out: list[Any] = []
    seen: dict[str, Row] = {}
    for row in rows:
        report.read += 1
        try:
            ex = convert(row)
            if ex is None:
                continue
            if ex.id in seen:
                first = seen[ex.id]
                raise row.error(
                    f"duplicate id {ex.id!r} (first seen at {first.where})", field=id_name, kind="duplicate id"
                )
        except DataError as exc:
            if on_error != "skip":
                raise
            report.drop(drop_reason(exc), str(exc))
            continue
        seen[ex.id] = row
        out.append(ex)
    report.kept = len(out)
    return out


def _single_turn(ex_id: str, instruction: str, output: str, input: str = "", **meta: Any) -> Example:
    return Example(
        id=ex_id, messages=[Message("user", instruction), Message("assistant", output)], input=input, meta=meta
    )


# --------------------------------------------------------------------------- loaders


@loader(records="sft")
def load_dolly(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[Example]:
    """databricks-dolly-15k-ja: instruction, input, output, category, index."""

    def convert(row: Row) -> Example:
        return _single_turn(
            id_field(row, "index"),
            text_field(row, "instruction"),
            text_field(row, "output"),
            text_field(row, "input", allow_empty=True),
            category=row.data.get("category", ""),
        )

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="index")


@loader(records="sft")
def load_ichikara(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[Example]:
    """ichikara-instruction: ID, text (the instruction), output."""

    def convert(row: Row) -> Example:
        return _single_turn(id_field(row, "ID"), text_field(row, "text"), text_field(row, "output"))

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="ID")


# The key dataset.field_map may map for the oasst loader.
OASST_FIELDS = {"text": "which text column holds the message (default text_ja; text = the English original)"}
ROOT_PARENTS = (None, "", "nan", "NaN", "None", "null")  # how a root message's parent_id is written


def _is_root(parent: Any) -> bool:
    """A root message: parent_id null (OpenAssistant's jsonl) or the string "nan" (kunishou's oasst1-89k-ja,
    written from pandas), or a float NaN (the same file read through pandas/datasets)."""
    return parent in ROOT_PARENTS or (isinstance(parent, float) and parent != parent)


def _flag(value: Any) -> bool:
    """ng_translation / use_deepl as the files write them: "1"/"0", 1/0, 1.0, true/false."""
    return str(value).strip().lower() in ("1", "1.0", "true")


@loader(records="sft", field_map=OASST_FIELDS)
def load_oasst(
    rows: list[Row], *, on_error: str, report: LoadReport, field_map: dict[str, str] | None = None, **_: Any
) -> list[Example]:
    """oasst1/oasst2 message trees (kunishou's Japanese translations, or OpenAssistant's own jsonl),
    linked by ``parent_id`` and rebuilt into conversations.

    The real files differ, and both are read unchanged:

    - kunishou/oasst1-89k-ja (and oasst2-135k-ja): one JSON array of every oasst message, the
      Japanese text in ``text_ja`` beside the English ``text``; a root's ``parent_id`` is the string
      ``"nan"``; ``ng_translation`` is "1" where translation failed (``text_ja`` then holds the
      untranslated original). There is no ``rank``, ``deleted`` or ``review_result``: deleted and
      rejected messages are in the file and cannot be told apart from it.
    - OpenAssistant's own layout: roots have ``parent_id: null``, replies carry ``rank``, ``deleted``
      and ``review_result``.

    Rules: a message with ``ng_translation`` set is dropped with its subtree ("untranslated
    (ng_translation)"; reading ``text`` with ``dataset.field_map={text: text}`` keeps them);
    ``deleted`` / ``review_result: false`` messages are dropped with their subtrees. Then, when the
    file ranks replies, each tree gives one conversation: from the root follow the best child (lowest
    ``rank``, ties by ``created_date`` then ``message_id``) to a leaf, cut to end on an assistant reply.
    When it does not (the Japanese files), every assistant reply gives one conversation, its thread from
    the root (the conversion the publisher's card gives, with the earlier turns kept). Every message
    that ends in no conversation is counted in ``dropped`` with its reason.
    """
    text_key = (field_map or {}).get("text", "text_ja")
    messages: dict[str, tuple[Row, dict[str, Any]]] = {}
    order: list[str] = []
    all_ids = {str(r.data.get("message_id")) for r in rows}
    for row in rows:
        report.read += 1
        try:
            mid = id_field(row, "message_id")
            if mid in messages:
                raise row.error(
                    f"duplicate id {mid!r} (first seen at {messages[mid][0].where})",
                    field="message_id",
                    kind="duplicate id",
                )
            role = row.data.get("role")
            if role not in ("prompter", "assistant"):
                raise row.error(f"role must be prompter or assistant, got {role!r}", field="role", kind="bad role")
            if "parent_id" not in row.data:
                raise row.error(
                    'missing field (a root has parent_id null or "nan")', field="parent_id", kind="missing field"
                )
            parent = row.data.get("parent_id")
            parent = None if _is_root(parent) else str(parent)
            if parent is not None and parent not in all_ids:
                raise row.error(f"parent_id {parent!r} refers to no message", field="parent_id", kind="unknown parent")
            text = text_field(row, text_key)
        except DataError as exc:
            if on_error != "skip":
                raise
            report.drop(drop_reason(exc), str(exc))
            continue
        why = None
        if row.data.get("deleted") is True:
            why = "deleted message"
        elif row.data.get("review_result") is False:
            why = "failed review"
        elif text_key == "text_ja" and _flag(row.data.get("ng_translation", 0)):
            why = "untranslated (ng_translation)"
        rank = row.data.get("rank")
        messages[mid] = (
            row,
            {
                "role": role,
                "text": text,
                "rank": rank if isinstance(rank, (int, float)) and rank == rank else None,
                "date": str(row.data.get("created_date") or ""),
                "parent": parent,
                "why": why,
            },
        )
        order.append(mid)

    # A message lives when it and all its ancestors are kept; otherwise it is dropped for the first
    # reason on its path to the root (its own, or "parent dropped: <reason>").
    status: dict[str, str | None] = {}
    visiting: set[str] = set()

    def reason(mid: str) -> str | None:
        if mid in status:
            return status[mid]
        m = messages[mid][1]
        if m["parent"] is None:
            r = m["why"]
        elif m["parent"] not in messages:  # the parent was a bad record (on_error=skip)
            r = "parent dropped"
        elif mid in visiting:
            r = "parent_id cycle"
        else:
            visiting.add(mid)
            up = reason(m["parent"])
            visiting.discard(mid)
            r = m["why"] if up is None else (up if up.startswith("parent") else f"parent dropped: {up}")
        status[mid] = r
        return r

    live = [m for m in order if reason(m) is None]
    for mid in order:
        r = reason(mid)
        if r is not None:
            report.drop(r)
    children: dict[str | None, list[str]] = {}
    for mid in live:
        children.setdefault(messages[mid][1]["parent"], []).append(mid)

    def conv(path: list[str]) -> list[Message]:
        return [
            Message("user" if messages[i][1]["role"] == "prompter" else "assistant", messages[i][1]["text"])
            for i in path
        ]

    def thread(mid: str) -> list[str]:
        path = [mid]
        while messages[path[-1]][1]["parent"] is not None:
            path.append(messages[path[-1]][1]["parent"])
        return path[::-1]

    roots = sorted(children.get(None, []), key=lambda i: (messages[i][1]["date"], i))
    ranked = any(messages[m][1]["rank"] is not None for m in live)
    out: list[Example] = []
    used: set[str] = set()
    for root in roots:
        if messages[root][1]["role"] != "prompter":
            continue
        if ranked:

            def key(i: str) -> tuple:
                rank = messages[i][1]["rank"]
                return (rank is None, rank if rank is not None else 0, messages[i][1]["date"], i)

            path = [root]
            while children.get(path[-1]):
                path.append(min(children[path[-1]], key=key))
            while path and messages[path[-1]][1]["role"] != "assistant":
                path.pop()
            if path:
                used.update(path)
                out.append(Example(id=root, messages=conv(path), meta={"turns": len(path) // 2}))
            continue
        stack = [root]
        while stack:  # depth-first, siblings by date: a stable order
            mid = stack.pop()
            kids = sorted(children.get(mid, []), key=lambda i: (messages[i][1]["date"], i))
            stack.extend(reversed(kids))
            if messages[mid][1]["role"] == "assistant":
                path = thread(mid)
                roles = [messages[i][1]["role"] for i in path]
                if roles == ["prompter", "assistant"] * (len(path) // 2):
                    used.update(path)
                    out.append(Example(id=mid, messages=conv(path), meta={"turns": len(path) // 2, "root": root}))
    for mid in live:
        if mid not in used:
            m = messages[mid][1]
            if m["parent"] is None and m["role"] != "prompter":
                report.drop("root is not a prompter message")
            elif ranked:
                report.drop("not on the best-ranked path")
            else:
                report.drop("no assistant reply" if m["role"] == "prompter" else "turns do not alternate")
    report.kept = len(out)
    report.unit = "messages"
    return out


@loader(records="sft")
def load_alpaca(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[Example]:
    """Japanese Alpaca (fujiki/japanese_alpaca_data): instruction, input, output. No id field: the
    record index is the id."""
    ids = index_ids(rows)

    def convert(row: Row) -> Example:
        return _single_turn(
            ids(row),
            text_field(row, "instruction"),
            text_field(row, "output"),
            text_field(row, "input", allow_empty=True),
        )

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="index")


@loader(records="sft")
def load_jaster(rows: list[Row], *, on_error: str, report: LoadReport, **_: Any) -> list[Example]:
    """jaster: llm-jp-eval's tuning split (``tuning/train/<task>.json``): ID, instruction, input, output, text.

    The conversation is the task instruction (user), the sample input (``### 入力:``) and the
    output (assistant); ``text`` (the same prompt rendered alpaca-style) is checked to be text when
    present but not used, so the cell's prompt format decides the rendering. Files from a ``dev/``
    or ``test/`` directory are refused: jaster trains on ``tuning/train`` only, and the dev/test
    samples are what llm-jp-eval scores.
    """
    for file in sorted({r.file for r in rows}):
        split = Path(file).parent.name
        if split in ("dev", "test"):
            raise DataError(
                f"a {split} split file: jaster trains on llm-jp-eval's tuning/train only "
                f"(set dataset.path=<llm-jp-eval dataset dir>/tuning/train)",
                file=file,
            )

    def convert(row: Row) -> Example:
        ex_id = id_field(row, "ID")
        if "text" in row.data:
            text_field(row, "text")
        return _single_turn(
            ex_id,
            text_field(row, "instruction"),
            text_field(row, "output"),
            text_field(row, "input", allow_empty=True),
            task=ex_id.rsplit("-", 1)[0],
        )

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name="ID")


# The keys dataset.field_map may map for the generic loader (value: the record's field name).
GENERIC_FIELDS = {
    "instruction": "the user's request (required unless `messages` is mapped)",
    "input": "optional context for the first user turn (### 入力:)",
    "output": "the assistant reply that is the target (required unless `messages` is mapped)",
    "id": "a unique record id (optional: the record index otherwise)",
    "system": "an optional system prompt",
    "messages": "a list of {role, content} (or {from, value}) turns ending with the assistant's reply",
}
ROLE_ALIASES: dict[str, Role] = {
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "system": "system",
}


@loader(records="sft", field_map=GENERIC_FIELDS)
def load_generic(
    rows: list[Row], *, on_error: str, report: LoadReport, field_map: dict[str, str] | None = None, **_: Any
) -> list[Example]:
    """Any local JSON / JSON lines / Parquet instruction data, through ``dataset.field_map``.

    ``field_map`` maps jsweep's keys (see GENERIC_FIELDS) to the record's field names, e.g.
    ``{instruction: question, output: answer, id: id}``; unmapped keys default to the same name
    (instruction, input, output), and ``id`` / ``system`` are used only when mapped or present.
    """
    fm = {"instruction": "instruction", "input": "input", "output": "output", **(field_map or {})}
    unknown = sorted(set(fm) - set(GENERIC_FIELDS))
    if unknown:
        raise DataError(f"dataset.field_map: unknown key '{unknown[0]}' (valid keys: {', '.join(GENERIC_FIELDS)})")
    ids = index_ids(rows)
    id_key = fm.get("id")

    def turns(row: Row) -> list[Message]:
        name = fm["messages"]
        value = row.data.get(name)
        if not isinstance(value, list) or not value:
            raise row.error("expected a non-empty list of turns", field=name, kind="bad messages")
        out = []
        for i, turn in enumerate(value):
            role = (
                ROLE_ALIASES.get(str(turn.get("role", turn.get("from", ""))).lower())
                if isinstance(turn, dict)
                else None
            )
            content = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
            if role is None or not isinstance(content, str) or not content.strip():
                raise row.error(
                    f"turn {i} needs a role (user/assistant/system) and non-empty text", field=name, kind="bad messages"
                )
            out.append(Message(role, content))
        if out[-1].role != "assistant" or not any(m.role == "user" for m in out):
            raise row.error(
                "the turns must include a user turn and end with the assistant's reply", field=name, kind="bad messages"
            )
        return out

    def convert(row: Row) -> Example:
        ex_id = id_field(row, id_key) if id_key else ids(row)
        system = text_field(row, fm["system"], allow_empty=True) if "system" in fm and fm["system"] in row.data else ""
        if "messages" in fm:
            msgs = turns(row)
            inp = ""
        else:
            msgs = [
                Message("user", text_field(row, fm["instruction"])),
                Message("assistant", text_field(row, fm["output"])),
            ]
            inp = text_field(row, fm["input"], allow_empty=True) if fm["input"] in row.data else ""
        if system and msgs[0].role != "system":
            msgs.insert(0, Message("system", system))
        meta = {
            k: v for k, v in row.data.items() if k not in set(fm.values()) and isinstance(v, (str, int, float, bool))
        }
        return Example(id=ex_id, messages=msgs, input=inp, meta=meta)

    return convert_rows(rows, convert, on_error=on_error, report=report, id_name=id_key or "index")
