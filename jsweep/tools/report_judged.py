"""The report's judged, graded and read sections (issue 18), appended to ``report.md`` by
jsweep.tools.report.write_report. Reads only local files of the sweep and its cells:

- each evaluator's own section, where its declaration has a ``report_section`` (judged evaluators first,
  e.g. ELYZA-tasks-100's scores; then the others, e.g. human grading and the samples side by side);
- pairwise: win rate of A over B per group with its 95% interval (``<sweep>/pairwise/``), after the judged ones.
"""

from __future__ import annotations

from pathlib import Path

from jsweep.eval.declaration import declarations
from jsweep.markdown import read_json as _read
from jsweep.markdown import table as _table


def sections(sweep_dir: Path) -> str:
    summary = _read(sweep_dir / "summary.json") or {}
    cells = [(row, Path(row["log"]).parent) for row in summary.get("cells", [])]
    label = {row["cell_id"]: row.get("label") or row["cell_id"][:8] for row, _ in cells}
    lines: list[str] = []

    with_section = [d for d in declarations() if d.report_section]
    for d in (d for d in with_section if d.judged):
        lines += d.required_hook("report_section")(sweep_dir, cells, label)

    pw = _read(sweep_dir / "pairwise" / "results.json")
    if pw and pw.get("groups"):
        g0 = pw["groups"][0]
        lines += [
            f"## Pairwise: {g0['a']} vs {g0['b']}",
            "",
            f"Win rate of `{g0['a']}` over `{g0['b']}` (1 win, 0.5 tie, 0 loss per question, both orders averaged; "
            f"95% bootstrap interval). Judge `{g0.get('judge_model')}`, prompt digest `{g0.get('judge_prompt_digest')}`.",
            "",
        ]
        rows = []
        for g in pw["groups"]:
            wr = g.get("win_rate")
            rows.append(
                [
                    g["group"] or "(all)",
                    f"**{wr:.3f}**" if wr is not None else "-",
                    f"[{g['ci_low']:.3f}, {g['ci_high']:.3f}]" if wr is not None else "-",
                    f"{g.get('wins', 0)} / {g.get('ties', 0)} / {g.get('losses', 0)}",
                    str(g.get("n", 0)),
                    str(g.get("unparseable", 0)),
                    str(g.get("pending", 0)),
                    f"{g['consistent']:.2f}" if g.get("consistent") is not None else "-",
                    g.get("error", ""),
                ]
            )
        lines += [
            *_table(
                [
                    "group",
                    "win rate",
                    "95% CI",
                    "W / T / L",
                    "questions",
                    "unparseable",
                    "pending",
                    "order-consistent",
                    "note",
                ],
                rows,
            ),
            "",
        ]

    for d in (d for d in with_section if not d.judged):
        lines += d.required_hook("report_section")(sweep_dir, cells, label)
    return "\n".join(lines)
