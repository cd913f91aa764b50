"""Local JGLUE data: find the files of a task and read them into the hub dataset's rows.

The harness's JGLUE tasks (and the JP-Stable prompts ported in :mod:`.jp_stable`) read the
columns of the hub dataset (``Rakuten/JGLUE``, built from ``shunk031/JGLUE``). This module turns
what the JGLUE authors publish (https://github.com/yahoojapan/JGLUE, ``datasets/*-v1.3``) into
exactly those rows, so the same task configs run on local files:

================  =====================================================  ===========================================
task              raw JGLUE file (one per split)                         hub row
================  =====================================================  ===========================================
jcommonsenseqa    JSON lines ``{q_id, question, choice0..4, label:int}``  unchanged
jnli              JSON lines ``{sentence_pair_id, yjcaptions_id,          same, ``label`` -> 0 entailment,
                  sentence1, sentence2, label:str}``                      1 contradiction, 2 neutral
marc_ja           JSON lines ``{sentence, label:str, review_id}``         same, ``label`` -> 0 positive, 1 negative
jsquad            one SQuAD-v2-style object ``{version, data: [{title,    one row per question ``{id, title, context,
                  paragraphs: [{context, qas: [{id, question,             question, answers: {text: [..],
                  answers: [{text, answer_start}], is_impossible}]}]}]}``  answer_start: [..]}, is_impossible}``
================  =====================================================  ===========================================

The label orders are the hub dataset's ``ClassLabel`` names, the order the harness's
``doc_to_choice`` lists and JP-Stable's ``CHOICES`` index into.

Files already in the hub schema (JSON lines / Parquet rows, or a ``save_to_disk`` copy of the
hub dataset: a directory with ``dataset_dict.json``) are read as they are.

Pure Python except the Parquet and ``load_from_disk`` readers (``datasets``, imported there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES
from jsweep.errors import DataError

TASKS = ("jcommonsenseqa", "jnli", "jsquad", "marc_ja")
FIXTURE_DIR = FIXTURES / "eval" / "jglue"

# Hub dataset ClassLabel orders (shunk031/JGLUE, Rakuten/JGLUE).
JNLI_LABELS = ("entailment", "contradiction", "neutral")
MARC_JA_LABELS = ("positive", "negative")

# The hub dataset the harness's japanese_leaderboard tasks name (used with hub: true).
HUB_DATASET = "Rakuten/JGLUE"
HUB_CONFIG = {"jcommonsenseqa": "JCommonsenseQA", "jnli": "JNLI", "jsquad": "JSQuAD", "marc_ja": "MARC-ja"}

# Directory names tried under data_dir: the fixture layout (<task>/), the JGLUE repo's
# datasets/<task>-v1.x/ and, for MARC-ja, its hyphenated spelling.
_DIR_NAMES = {
    "jcommonsenseqa": ("jcommonsenseqa",),
    "jnli": ("jnli",),
    "jsquad": ("jsquad",),
    "marc_ja": ("marc_ja", "marc-ja"),
}
_SPLIT_PREFIX = {"valid": ("valid", "validation", "dev"), "train": ("train",)}
_SUFFIXES = (".json", ".jsonl", ".parquet")
_VERSION = re.compile(r"-v(\d+(?:\.\d+)*)$")


@dataclass
class TaskFiles:
    """Where one task's data is: a raw/hub-schema file per split, or a ``save_to_disk`` directory."""

    task: str
    valid: Path | None = None
    train: Path | None = None
    disk: Path | None = None  # a hub dataset saved with save_to_disk (splits train / validation)

    def describe(self) -> dict[str, str | None]:
        if self.disk:
            return {"disk": str(self.disk)}
        return {"valid": str(self.valid), "train": str(self.train) if self.train else None}


# --------------------------------------------------------------------------- finding files


def _version_key(path: Path) -> tuple:
    m = _VERSION.search(path.name if path.is_dir() else path.stem)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _split_file(directory: Path, split: str) -> Path | None:
    """The file of ``split`` in ``directory``: <prefix>-v<ver>.json (highest version) or <prefix>.json(l)/.parquet."""
    found = []
    for prefix in _SPLIT_PREFIX[split]:
        for path in directory.glob(f"{prefix}*"):
            if (
                path.is_file()
                and path.suffix in _SUFFIXES
                and (path.stem == prefix or (_VERSION.search(path.stem) and path.stem.split("-v")[0] == prefix))
            ):
                found.append(path)
    return max(found, key=lambda p: (_version_key(p), p.suffix == ".json", p.name)) if found else None


def _task_dirs(task: str, root: Path) -> list[Path]:
    dirs = []
    for name in _DIR_NAMES[task]:
        dirs.append(root / name)
        dirs.extend(sorted((p for p in root.glob(f"{name}-v*") if p.is_dir()), key=_version_key, reverse=True))
    return dirs


def _expected(task: str, root: Path) -> str:
    return str(root / task / ("valid.json" if task == "marc_ja" else "valid-v1.3.json"))


def _from_directory(task: str, directory: Path) -> TaskFiles | None:
    if (directory / "dataset_dict.json").exists():
        return TaskFiles(task, disk=directory)
    valid = _split_file(directory, "valid")
    return TaskFiles(task, valid=valid, train=_split_file(directory, "train")) if valid else None


def find_task_files(task: str, data_dir: str | Path | None = None, override: Any = None) -> TaskFiles:
    """Locate ``task``'s files, or raise a DataError naming the expected path.

    ``override`` (the option ``paths.<task>``) wins over ``data_dir``: a file (the split to score),
    a directory (searched like ``data_dir/<task>``), or a mapping ``{valid: file, train: file|null}``.
    ``data_dir`` null means the shipped fixtures.
    """
    if override:
        if isinstance(override, Mapping):
            unknown = sorted(set(override) - {"valid", "train"})
            if unknown:
                raise DataError(f"paths.{task} takes the keys valid and train, not {', '.join(unknown)}")
            if not override.get("valid"):
                raise DataError(f"paths.{task} needs a valid file (the split to score)")
            valid = Path(str(override["valid"])).expanduser()
            train = Path(str(override["train"])).expanduser() if override.get("train") else None
            for split, path in (("valid", valid), ("train", train)):
                if path is not None and not path.is_file():
                    raise DataError(
                        f"JGLUE {task} {split} file not found (set by paths.{task}.{split})", file=str(path)
                    )
            return TaskFiles(task, valid=valid, train=train)
        path = Path(str(override)).expanduser()
        if path.is_file():
            return TaskFiles(task, valid=path)
        if path.is_dir():
            found = _from_directory(task, path)
            if found:
                return found
            raise DataError(
                f"no JGLUE {task} valid file in this directory (set by paths.{task}); expected "
                f"valid-v1.3.json, valid.json, valid.jsonl or a save_to_disk copy",
                file=str(path),
            )
        raise DataError(f"JGLUE {task} data not found (set by paths.{task})", file=str(path))

    root = Path(str(data_dir)).expanduser() if data_dir else FIXTURE_DIR
    for directory in _task_dirs(task, root):
        if directory.is_dir():
            found = _from_directory(task, directory)
            if found:
                return found
    hint = (
        " MARC-ja is not distributed with JGLUE: build it with JGLUE's preprocess/marc-ja scripts "
        "(jsweep never downloads it), or leave it out of eval.jglue.tasks."
        if task == "marc_ja"
        else ""
    )
    raise DataError(
        f"JGLUE {task} file not found (also looked for {task}-v1.*/valid-v*.json, valid.json(l) and "
        f"save_to_disk copies under {root}); set eval.jglue.data_dir or eval.jglue.paths.{task}.{hint}",
        file=_expected(task, root),
    )


# --------------------------------------------------------------------------- reading and converting


def _read_json_records(path: Path) -> tuple[list[Any], bool]:
    """Records of a JSON lines file, a JSON array, or a single JSON object (one record).

    Returns (records, line_based)."""
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, list):
        return obj, False
    if isinstance(obj, dict):
        return [obj], "\n" not in text.strip()
    records: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", file=str(path), record=f"line {lineno}") from None
    return records, True


def _read_records(path: Path) -> tuple[list[Any], bool]:
    if path.suffix == ".parquet":
        import datasets

        return datasets.Dataset.from_parquet(str(path)).to_list(), False
    return _read_json_records(path)


def _where(i: int, line_based: bool) -> str | int:
    return f"line {i + 1}" if line_based else i


def _need(rec: Mapping[str, Any], key: str, kind: type | tuple, path: Path, where: str | int) -> Any:
    if key not in rec:
        raise DataError("missing field", file=str(path), record=where, field=key)
    value = rec[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"expected {names}, got {type(value).__name__}", file=str(path), record=where, field=key)
    return value


def _label(rec: Mapping[str, Any], names: tuple[str, ...], path: Path, where: str | int) -> int:
    value = _need(rec, "label", (str, int), path, where)
    if isinstance(value, str) and value.strip() in names:
        return names.index(value.strip())
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        idx = int(value)
        if 0 <= idx < len(names):
            return idx
    raise DataError(
        f"label {value!r} is not one of {', '.join(names)} (or their indices 0-{len(names) - 1})",
        file=str(path),
        record=where,
        field="label",
    )


def _jcommonsenseqa_row(rec: Mapping[str, Any], path: Path, where: str | int, index: int) -> dict[str, Any]:
    row: dict[str, Any] = {"q_id": rec.get("q_id", index), "question": _need(rec, "question", str, path, where)}
    for i in range(5):
        row[f"choice{i}"] = _need(rec, f"choice{i}", str, path, where)
    label = _need(rec, "label", (int, str), path, where)
    try:
        label = int(label)
    except ValueError:
        label = -1
    if not 0 <= label < 5:
        raise DataError(
            f"label {rec['label']!r} is not a choice index 0-4", file=str(path), record=where, field="label"
        )
    row["label"] = label
    return row


def _jnli_row(rec: Mapping[str, Any], path: Path, where: str | int, index: int) -> dict[str, Any]:
    return {
        "sentence_pair_id": str(rec.get("sentence_pair_id", index)),
        "yjcaptions_id": str(rec.get("yjcaptions_id", "")),
        "sentence1": _need(rec, "sentence1", str, path, where),
        "sentence2": _need(rec, "sentence2", str, path, where),
        "label": _label(rec, JNLI_LABELS, path, where),
    }


def _marc_ja_row(rec: Mapping[str, Any], path: Path, where: str | int, index: int) -> dict[str, Any]:
    return {
        "sentence": _need(rec, "sentence", str, path, where),
        "label": _label(rec, MARC_JA_LABELS, path, where),
        "review_id": str(rec.get("review_id", index)),
    }


def _answers(value: Any, path: Path, where: str | int) -> dict[str, list]:
    """SQuAD answers in either shape -> the hub's ``{text: [...], answer_start: [...]}``."""
    if isinstance(value, Mapping) and isinstance(value.get("text"), list):
        texts, starts = list(value["text"]), list(value.get("answer_start") or [-1] * len(value["text"]))
    elif isinstance(value, list):
        texts, starts = [], []
        for a in value:
            if not isinstance(a, Mapping) or not isinstance(a.get("text"), str):
                raise DataError("each answer needs a text", file=str(path), record=where, field="answers")
            texts.append(a["text"])
            starts.append(int(a.get("answer_start", -1)))
    else:
        raise DataError("expected a list of {text, answer_start}", file=str(path), record=where, field="answers")
    if not texts or not all(isinstance(t, str) for t in texts):
        raise DataError("no answer text", file=str(path), record=where, field="answers")
    return {"text": texts, "answer_start": [int(s) for s in starts]}


def _jsquad_row(rec: Mapping[str, Any], path: Path, where: str | int, index: int) -> dict[str, Any]:
    return {
        "id": str(rec.get("id", index)),
        "title": str(rec.get("title", "")),
        "context": _need(rec, "context", str, path, where),
        "question": _need(rec, "question", str, path, where),
        "answers": _answers(rec.get("answers"), path, where),
        "is_impossible": bool(rec.get("is_impossible", False)),
    }


def flatten_jsquad(obj: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """JGLUE's nested JSQuAD file -> one hub row per question (id, title, context, question, answers, is_impossible)."""
    data = obj.get("data")
    if not isinstance(data, list):
        raise DataError(
            "expected the JSQuAD layout {version, data: [{title, paragraphs}]}", file=str(path), field="data"
        )
    rows = []
    for a, article in enumerate(data):
        title = article.get("title", "") if isinstance(article, Mapping) else None
        paragraphs = article.get("paragraphs") if isinstance(article, Mapping) else None
        if not isinstance(paragraphs, list):
            raise DataError("missing paragraphs", file=str(path), record=f"data[{a}]", field="paragraphs")
        for p, para in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(para, Mapping) or not isinstance(para.get("context"), str):
                raise DataError("missing field", file=str(path), record=where, field="context")
            qas = para.get("qas")
            if not isinstance(qas, list):
                raise DataError("missing field", file=str(path), record=where, field="qas")
            for q, qa in enumerate(qas):
                qwhere = f"{where}.qas[{q}]"
                if not isinstance(qa, Mapping):
                    raise DataError("expected an object", file=str(path), record=qwhere)
                rows.append(
                    {
                        "id": str(_need(qa, "id", (str, int), path, qwhere)),
                        "title": str(title),
                        "context": para["context"],
                        "question": _need(qa, "question", str, path, qwhere),
                        "answers": _answers(qa.get("answers"), path, qwhere),
                        "is_impossible": bool(qa.get("is_impossible", False)),
                    }
                )
    return rows


_CONVERT = {"jcommonsenseqa": _jcommonsenseqa_row, "jnli": _jnli_row, "marc_ja": _marc_ja_row, "jsquad": _jsquad_row}


def read_split(task: str, path: str | Path) -> list[dict[str, Any]]:
    """Read one split file of ``task`` (raw JGLUE or hub schema) into hub rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"JGLUE {task} file not found", file=str(path))
    records, line_based = _read_records(path)
    if task == "jsquad" and len(records) == 1 and isinstance(records[0], Mapping) and "data" in records[0]:
        rows = flatten_jsquad(records[0], path)
    else:
        rows = []
        for i, rec in enumerate(records):
            where = _where(i, line_based)
            if not isinstance(rec, Mapping):
                raise DataError(f"expected an object, got {type(rec).__name__}", file=str(path), record=where)
            rows.append(_CONVERT[task](rec, path, where, i))
    if not rows:
        raise DataError(f"no {task} records", file=str(path))
    return rows


def load_task_rows(files: TaskFiles) -> dict[str, list[dict[str, Any]]]:
    """The task's splits as hub rows: ``{"validation": [...], "train": [...]}`` (train absent if no file)."""
    if files.disk is not None:
        import datasets

        dd = datasets.load_from_disk(str(files.disk))
        splits = {}
        for name, keys in (("validation", ("validation", "valid", "dev")), ("train", ("train",))):
            for key in keys:
                if key in dd:
                    splits[name] = [_CONVERT[files.task](r, files.disk, i, i) for i, r in enumerate(dd[key])]
                    break
        if "validation" not in splits:
            raise DataError(f"saved dataset has no validation split (splits: {', '.join(dd)})", file=str(files.disk))
        return splits
    assert files.valid is not None
    splits = {"validation": read_split(files.task, files.valid)}
    if files.train is not None:
        splits["train"] = read_split(files.task, files.train)
    return splits
