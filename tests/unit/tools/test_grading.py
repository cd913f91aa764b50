"""Human grading: question-set format, blinded shuffled export, import of filled and malformed sheets
(no model needed: cells with saved human_eval answers are written by hand)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from jsweep.errors import DataError
from jsweep.eval.answers import write_jsonl
from jsweep.eval.samples import QUESTIONS_FIXTURE, read_questions
from jsweep.tools import grading as G
from tests.support.cellstate import summary_row, write_cell, write_summary


def make_sweep(tmp: Path, n_cells: int = 2) -> tuple[Path, list[str]]:
    questions = read_questions(None)
    rows, ids = [], []
    for c in range(n_cells):
        cid = f"{c:012d}"
        cell_dir = tmp / "outputs" / "cells" / cid
        write_jsonl(
            cell_dir / "human_eval" / "answers.jsonl",
            [{**q, "answer": f"セル{c}の回答: {q['question'][:6]}\n二行目"} for q in questions],
        )
        write_cell(cell_dir, metrics={})
        rows.append(summary_row(c, cid, cell_dir, f"dataset=d{c}", {}, overrides=[f"dataset=d{c}"]))
        ids.append(cid)
    return write_summary(tmp / "outputs" / "sweeps" / "s1", rows), ids


def read_sheet(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def write_sheet(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8-sig") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_question_set_format_and_its_errors(tmp_path):
    qs = read_questions(QUESTIONS_FIXTURE)
    assert len(qs) == 5 and set(qs[0]) == {"id", "question", "reference"}
    csv_path = tmp_path / "q.csv"
    csv_path.write_text("id,question\nq1,売上とは?\nq2,利益とは?\n", encoding="utf-8-sig")
    assert [q["id"] for q in read_questions(csv_path)] == ["q1", "q2"]
    (tmp_path / "dup.jsonl").write_text('{"id": "a", "question": "x"}\n{"id": "a", "question": "y"}\n')
    with pytest.raises(DataError, match="line 2: field 'id': duplicate id 'a'"):
        read_questions(tmp_path / "dup.jsonl")
    (tmp_path / "empty.jsonl").write_text('{"id": "a", "question": ""}\n')
    with pytest.raises(DataError, match="line 1: field 'question': missing or empty"):
        read_questions(tmp_path / "empty.jsonl")
    (tmp_path / "bad.csv").write_text("question\nx\n")
    with pytest.raises(DataError, match="header must have the columns id and question"):
        read_questions(tmp_path / "bad.csv")


def test_export_is_blinded_shuffled_excel_friendly_and_import_maps_grades_to_cells(tmp_path):
    sweep, ids = make_sweep(tmp_path)
    sheet, key_path, n = G.export(sweep, seed=3)
    assert n == 10 and key_path.parent == sweep / "grading"
    raw = sheet.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "売上総利益率".encode() in raw
    rows = read_sheet(sheet)
    assert list(rows[0]) == G.COLUMNS
    assert not any(cid in raw.decode("utf-8-sig") for cid in ids) and "dataset=" not in raw.decode("utf-8-sig")
    key = json.loads(key_path.read_text())
    order = [key["items"][r["item"]]["cell_id"] for r in rows]
    assert order != sorted(order)  # shuffled
    assert G.export(sweep, tmp_path / "again.csv", seed=3)[2] == 10
    assert [r["answer"] for r in read_sheet(tmp_path / "again.csv")] == [r["answer"] for r in rows]  # seeded
    G.export(sweep, seed=3)  # the key of the sheet being graded
    for r in rows:
        k = key["items"][r["item"]]
        r["grade"] = {ids[0]: "○", ids[1]: "0"}[k["cell_id"]] if k["question_id"] != "q05" else "0.5"
    rows.reverse()  # graders may sort the sheet
    result = G.import_grades(sweep, write_sheet(tmp_path / "filled.csv", rows))
    assert result["cells"][ids[0]]["accuracy"] == pytest.approx((4 + 0.5) / 5)
    assert result["cells"][ids[1]]["accuracy"] == pytest.approx(0.5 / 5)
    assert result["cells"][ids[1]]["graded"] == 5
    G.log_grades(sweep, result)
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["cells"][0]["metrics"]["human_eval/accuracy"] == pytest.approx(0.9)
    # Japanese Excel's plain "CSV" is Shift_JIS (cp932): read as well
    result = G.import_grades(sweep, write_sheet(tmp_path / "sjis.csv", rows, encoding="cp932"))
    assert result["cells"][ids[0]]["accuracy"] == pytest.approx(0.9)


def test_malformed_and_incomplete_sheets_name_the_row_and_import_nothing(tmp_path):
    sweep, _ids = make_sweep(tmp_path)
    sheet, _, _ = G.export(sweep)
    rows = read_sheet(sheet)
    for r in rows:
        r["grade"] = "1"
    bad = [dict(r) for r in rows]
    bad[1]["grade"] = ""  # sheet row 3
    bad[2]["grade"] = "たぶん"  # row 4
    bad[3]["item"] = "G999"  # row 5
    bad[4]["answer"] = "書き換えた回答"  # row 6
    bad[5]["item"] = bad[0]["item"]  # row 7: repeated
    with pytest.raises(G.GradingError) as err:
        G.import_grades(sweep, write_sheet(tmp_path / "bad.csv", bad))
    msg = str(err.value)
    assert "nothing imported" in msg
    assert "row 3: item" in msg and "has no grade" in msg
    assert "row 4: item" in msg and "grade 'たぶん'" in msg
    assert "row 5: unknown item 'G999'" in msg
    assert "row 6: the answer of item" in msg
    assert "row 7: item" in msg and "appears again (first at row 2)" in msg
    assert "item(s) missing from the sheet" in msg
    assert not (sweep / "grading" / "results.json").exists()
    # row numbers are the spreadsheet's (one row per record, even with multi-line answers)
    (tmp_path / "nohdr.csv").write_text("id,score\nG001,1\n", encoding="utf-8")
    with pytest.raises(G.GradingError, match=r"row 1 \(header\): missing column\(s\) item, grade"):
        G.import_grades(sweep, tmp_path / "nohdr.csv")
    with pytest.raises(G.GradingError, match=r"1 item\(s\) missing from the sheet: G010"):
        G.import_grades(sweep, write_sheet(tmp_path / "short.csv", rows[:-1]))
