"""Raw JGLUE -> llm-jp-eval evaluation data (``jsweep prepare llm-jp-eval``, jsweep.tools.prepare).

Converts the JGLUE v1.3 files (JNLI, JSQuAD, JCommonsenseQA, JSTS) the way llm-jp-eval's own
preprocessing does: the JGLUE train file is shuffled with ``random.seed(42)`` and split 90/10
into ``train`` (few-shot pool) and ``dev``; the JGLUE valid file becomes ``test``. Inputs are
rendered as llm-jp-eval renders them (``前提：…\\n仮説：…``, ``文章：…\\n質問：…``, ``質問：…\\n選択肢：0.…,1.…``,
``文1：…\\n文2：…``). No network is used.

Every selected task needs its JGLUE train file: without it the few-shot pool would have to come
out of the scored split, and the test set would no longer be llm-jp-eval's (JNLI: 2,191 samples
instead of 2,434), so prepare stops and names the missing files before writing anything.
``--allow-missing-train`` takes that route anyway for the tasks without a train file: a seeded
10% of valid becomes the train/dev pool and the rest ``test`` (few-shot examples never overlap the
scored samples). It warns for each such task, and ``prepare_report.json`` records it
(``dev_only: true``, the test size against the full valid size); llm-jp-eval cells scored on such
data carry the ``llm_jp_eval.dev_only_tasks`` tag.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsweep.data.sources import Row, Source, read_rows
from jsweep.errors import DataError

TASKS: dict[str, dict[str, Any]] = {
    "jnli": {
        "dir": "jnli",
        "output_length": 3,
        "metrics": ["exact_match"],
        "instruction": "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。"
        "それ以外には何も含めないことを厳守してください。\n\n制約：\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
        "- そのいずれでもない場合はneutralと出力",
    },
    "jsquad": {
        "dir": "jsquad",
        "output_length": 25,
        "metrics": ["char_f1"],
        "instruction": "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。 "
        "それ以外には何も含めないことを厳守してください。",
    },
    "jcommonsenseqa": {
        "dir": "jcommonsenseqa",
        "output_length": 1,
        "metrics": ["exact_match"],
        "instruction": "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
        "なお、回答は選択肢の番号（例：0）でするものとします。 回答となる数値をint型で返し、"
        "他には何も含めないことを厳守してください。",
    },
    "jsts": {
        "dir": "jsts",
        "output_length": 3,
        "metrics": ["pearson", "spearman"],
        "instruction": "日本語の文ペアの意味がどのくらい近いかを判定し、類似度を0.0〜5.0までの間の値で付与してください。"
        "0.0に近いほど文ペアの意味が異なり、5.0に近いほど文ペアの意味が似ていることを表しています。"
        "整数値のみを返し、それ以外には何も含めないことを厳守してください。",
    },
}


def _field(row: Row, name: str) -> Any:
    if name not in row.data:
        raise row.error("missing field", field=name)
    return row.data[name]


def _samples_jnli(rows: list[Row]) -> list[dict[str, str]]:
    return [
        {"input": f"前提：{_field(r, 'sentence1')}\n仮説：{_field(r, 'sentence2')}", "output": str(_field(r, "label"))}
        for r in rows
    ]


def _samples_jcommonsenseqa(rows: list[Row]) -> list[dict[str, str]]:
    out = []
    for r in rows:
        choices = ",".join(f"{i}.{_field(r, f'choice{i}')}" for i in range(5))
        out.append({"input": f"質問：{_field(r, 'question')}\n選択肢：{choices}", "output": str(_field(r, "label"))})
    return out


def _samples_jsts(rows: list[Row]) -> list[dict[str, str]]:
    return [
        {"input": f"文1：{_field(r, 'sentence1')}\n文2：{_field(r, 'sentence2')}", "output": str(_field(r, "label"))}
        for r in rows
    ]


def _samples_jsquad(path: Path) -> list[dict[str, str]]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", file=str(path)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise DataError("expected a SQuAD-style object with a 'data' list", file=str(path), field="data")
    out = []
    for a, article in enumerate(obj["data"]):
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataError("missing context", file=str(path), record=f"article {a}", field="context")
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                if not answers:
                    continue  # unanswerable questions are not scored by llm-jp-eval
                out.append({"input": f"文章：{context}\n質問：{qa['question']}", "output": answers[0]["text"]})
    return out


CONVERTERS: dict[str, Callable[[list[Row]], list[dict[str, str]]]] = {
    "jnli": _samples_jnli,
    "jcommonsenseqa": _samples_jcommonsenseqa,
    "jsts": _samples_jsts,
}


def _load(task: str, path: Path) -> list[dict[str, str]]:
    if task == "jsquad":
        return _samples_jsquad(path)
    return CONVERTERS[task](read_rows(Source("path", str(path))))


def _write(path: Path, task: str, samples: list[dict[str, str]]) -> None:
    spec = TASKS[task]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "instruction": spec["instruction"],
                "output_length": spec["output_length"],
                "metrics": spec["metrics"],
                "few_shots": [],
                "samples": samples,
            },
            ensure_ascii=False,
            indent=4,
        ),
        encoding="utf-8",
    )


def prepare_jglue(
    jglue_dir: Path, out_dir: Path, tasks: list[str] | None = None, allow_missing_train: bool = False
) -> dict[str, Any]:
    """Write ``out_dir/evaluation/{train,dev,test}/<task>.json``; return a report of counts and sources."""
    report: dict[str, Any] = {}
    tasks = tasks or list(TASKS)
    for task in tasks:
        if task not in TASKS:
            raise DataError(f"unknown task '{task}' (choose from: {', '.join(TASKS)})")
    no_train = [
        jglue_dir / TASKS[t]["dir"] / "train-v1.3.json"
        for t in tasks
        if (jglue_dir / TASKS[t]["dir"] / "valid-v1.3.json").exists()
        and not (jglue_dir / TASKS[t]["dir"] / "train-v1.3.json").exists()
    ]
    if no_train and not allow_missing_train:
        raise DataError(
            f"JGLUE train file missing: {', '.join(map(str, no_train))}. llm-jp-eval draws few-shot "
            f"examples from train; without it they would come out of the scored split and the test set "
            f"would shrink. Supply the train files, or pass --allow-missing-train to accept that "
            f"(it is recorded in prepare_report.json)"
        )
    for task in tasks:
        tdir = jglue_dir / TASKS[task]["dir"]
        train_file, valid_file = tdir / "train-v1.3.json", tdir / "valid-v1.3.json"
        if not valid_file.exists():
            report[task] = {"skipped": f"missing {valid_file}"}
            continue
        test = _load(task, valid_file)
        if train_file.exists():
            pool = _load(task, train_file)
            note = "train and dev from the JGLUE train file (seed 42, 90/10); test = JGLUE valid"
        else:
            rng = random.Random(42)
            order = list(range(len(test)))
            rng.shuffle(order)
            k = max(1, len(test) // 10)
            held = set(order[:k])
            pool = [s for i, s in enumerate(test) if i in held]
            test = [s for i, s in enumerate(test) if i not in held]
            note = (
                f"no JGLUE train file: a seeded 10% of valid ({k}) is the train/dev pool, "
                f"the other {len(test)} are test"
            )
            print(
                f"jsweep prepare: WARNING: {task}: {note}; its scores are not comparable with llm-jp-eval's "
                f"({len(order)} test samples there)",
                file=sys.stderr,
            )
        random.seed(42)
        random.shuffle(pool)
        cut = int(len(pool) * 0.9)
        train, dev = pool[:cut], pool[cut:]
        root = out_dir / "evaluation"
        for split, samples in (("train", train), ("dev", dev), ("test", test)):
            _write(root / split / f"{task}.json", task, samples)
        report[task] = {
            "train": len(train),
            "dev": len(dev),
            "test": len(test),
            "note": note,
            "dev_only": not train_file.exists(),
        }
        if not train_file.exists():
            report[task]["valid_rows"] = len(test) + len(pool)
    (out_dir / "prepare_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
