"""The report's judged, graded and read sections (issue 18), appended to ``report.md`` by
jsweep.tools.report.write_report. Reads only local files of the sweep and its cells:

- ELYZA-tasks-100: each cell's mean score, score distribution, unparseable and pending counts,
  and the judge (model, prompt digest) that produced them;
- pairwise: win rate of A over B per group with its 95% interval (``<sweep>/pairwise/``);
- human grading: the export (sheet, items) and accuracy per cell once imported (``<sweep>/grading/``);
- samples: the answers side by side, one row per prompt, one column per cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from jsweep.eval.answers import read_jsonl

    try:
        return read_jsonl(path)
    except (OSError, json.JSONDecodeError):
        return []


def _cell(text: Any, limit: int = 160) -> str:
    s = "" if text is None else str(text)
    s = s.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
    return s if len(s) <= limit else s[:limit] + "…"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def sections(sweep_dir: Path) -> str:
    summary = _read(sweep_dir / "summary.json") or {}
    cells = [(row, Path(row["log"]).parent) for row in summary.get("cells", [])]
    label = {row["cell_id"]: row.get("label") or row["cell_id"][:8] for row, _ in cells}
    lines: list[str] = []

    elyza = [(row, _read(d / "elyza_tasks_100" / "results.json"), d) for row, d in cells]
    elyza = [(row, res, d) for row, res, d in elyza if res or (d / "elyza_tasks_100" / "answers.jsonl").exists()]
    if elyza:
        lines += ["## ELYZA-tasks-100 (LLM judge, 1-5)", ""]
        rows = []
        judges = set()
        for row, res, d in elyza:
            m = (res or {}).get("metrics", {})
            pending = m.get("elyza_tasks_100/pending", len(_jsonl(d / "elyza_tasks_100" / "answers.jsonl")) if not res else 0)
            score = m.get("elyza_tasks_100/score")
            dist = " / ".join(str(int(m.get(f"elyza_tasks_100/dist/{s}", 0))) for s in range(1, 6)) if res else "-"
            rows.append([row["cell_id"][:8], _cell(label[row["cell_id"]]), f"{score:.3f}" if score is not None else "-",
                         dist, str(int(m.get("elyza_tasks_100/unparseable", 0))), str(int(pending))])
            if res:
                judges.add(f"`{res.get('judge_model')}` at {res.get('judge_base_url')}, prompt `{res.get('judge_prompt')}` "
                           f"(digest `{res.get('judge_prompt_digest')}`)")
        rows.sort(key=lambda r: -float(r[2]) if r[2] != "-" else float("inf"))
        lines += [*_table(["cell", "label", "**score**", "1 / 2 / 3 / 4 / 5", "unparseable", "pending"], rows), ""]
        lines += [f"Judge: {j}" for j in sorted(judges)] + [""]
        if any(r[5] != "0" for r in rows):
            lines += [f"Some answers are not judged yet: `python -m jsweep judge {sweep_dir}`.", ""]

    pw = _read(sweep_dir / "pairwise" / "results.json")
    if pw and pw.get("groups"):
        g0 = pw["groups"][0]
        lines += [f"## Pairwise: {g0['a']} vs {g0['b']}", "",
                  f"Win rate of `{g0['a']}` over `{g0['b']}` (1 win, 0.5 tie, 0 loss per question, both orders averaged; "
                  f"95% bootstrap interval). Judge `{g0.get('judge_model')}`, prompt digest `{g0.get('judge_prompt_digest')}`.", ""]
        rows = []
        for g in pw["groups"]:
            wr = g.get("win_rate")
            rows.append([g["group"] or "(all)", f"**{wr:.3f}**" if wr is not None else "-",
                         f"[{g['ci_low']:.3f}, {g['ci_high']:.3f}]" if wr is not None else "-",
                         f"{g.get('wins', 0)} / {g.get('ties', 0)} / {g.get('losses', 0)}", str(g.get("n", 0)),
                         str(g.get("unparseable", 0)), str(g.get("pending", 0)),
                         f"{g['consistent']:.2f}" if g.get("consistent") is not None else "-",
                         g.get("error", "")])
        lines += [*_table(["group", "win rate", "95% CI", "W / T / L", "questions", "unparseable", "pending",
                           "order-consistent", "note"], rows), ""]

    gdir = sweep_dir / "grading"
    key = _read(gdir / "key.json")
    if key:
        res = _read(gdir / "results.json")
        lines += ["## Human grading", "",
                  f"Blinded sheet: `{key.get('sheet')}` ({len(key.get('items', {}))} answers of {len(key.get('cells', {}))} "
                  f"cell(s), shuffled with seed {key.get('seed')}); key: `{gdir / 'key.json'}`.", ""]
        if res:
            rows = [[cid[:8], _cell(r.get("label", "")), f"**{r['accuracy']:.3f}**", str(r["graded"])]
                    for cid, r in sorted(res["cells"].items(), key=lambda kv: -kv[1]["accuracy"])]
            lines += [*_table(["cell", "label", "accuracy", "graded"], rows), ""]
        else:
            lines += [f"Not graded yet: fill the `grade` column, then `python -m jsweep grade import {sweep_dir} <sheet>`.", ""]

    samples = {row["cell_id"]: _jsonl(d / "samples" / "answers.jsonl") for row, d in cells}
    samples = {k: v for k, v in samples.items() if v}
    if samples:
        ids = list(samples)
        first = samples[ids[0]][0]
        params = ", ".join(f"{k}={first[k]}" for k in ("temperature", "top_p", "top_k", "repetition_penalty",
                                                      "max_new_tokens", "seed") if k in first)
        lines += ["## Samples (prompt x cell)", "", f"Generation: {params}.", ""]
        prompts: dict[tuple, str] = {}
        for rows_ in samples.values():
            for r in rows_:
                prompts.setdefault((r["id"], r.get("sample", 0)), r["prompt"])
        by = {cid: {(r["id"], r.get("sample", 0)): r["answer"] for r in rows_} for cid, rows_ in samples.items()}
        rows = [[_cell(p, 80), *(_cell(by[c].get(k, ""), 240) for c in ids)] for k, p in prompts.items()]
        lines += [*_table(["prompt", *(f"{c[:8]} {_cell(label.get(c, ''), 40)}" for c in ids)], rows), ""]
    return "\n".join(lines)
