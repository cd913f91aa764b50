"""Evaluator ``heldout``: the loss of every cell on ONE shared held-out set.

Each cell's own ``eval/loss`` is measured on a split of its own training data, so it cannot compare
cells trained on different datasets. This evaluator scores every cell on the same records: the
mean token loss of the reference reply given the prompt, in the cell's own prompt format (as in
training: EOS closes the reply, the loss is on the reply tokens only).

- ``heldout/loss``: total reply-token NLL / reply tokens (lower is better);
- ``heldout/perplexity``: exp of that;
- ``heldout/text_loss`` and ``heldout/end_loss``: that loss split in two, the reply's own tokens (per
  token) and the EOS that closes it (per record): where the model expects the reply to end. Tuning on
  long replies raises ``end_loss`` on short ones while it may lower ``text_loss`` (README: "make sweep");
- ``heldout/samples``, ``heldout/tokens``;
- ``predictions/heldout.jsonl``: per-record NLL, token count and the closing EOS's NLL, which ``jsweep report`` resamples
  for the score's 95% interval, and, for two cells, for the 95% interval of their difference
  (a paired bootstrap: the same records resampled for both, so the items' own difficulty, common to
  every cell, cancels out).

Data: ``path`` (a file or directory in the format of ``loader``, any instruction loader: dolly,
ichikara, alpaca, jaster, generic with ``field_map``...), else the shipped fixture
(``fixtures/eval/heldout/heldout_ja.json``, hand-written, in no training fixture), which serves the
builtin tiny model only: pre-flight asks a real model for ``eval.heldout.path``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES
from jsweep.errors import ConfigError
from jsweep.eval.declaration import Declaration, Headline
from jsweep.eval.options import defaults, typed_options

FIXTURE = FIXTURES / "eval" / "heldout" / "heldout_ja.json"


@dataclass
class Options:
    """``eval.heldout`` (conf/eval/heldout.yaml says what each means), typed by the config's converter."""

    path: str | None = None
    loader: str = "dolly"
    field_map: dict[str, Any] = field(default_factory=dict)
    max_samples: int | None = -1
    batch_size: int = 8


DEFAULTS: dict[str, Any] = defaults(Options)


EVALUATOR = Declaration(
    name="heldout",
    implementation="jsweep.eval.heldout:HeldOut",
    headlines=(Headline("heldout/loss", higher_is_better=False, scale="nats/token"),),
    check="jsweep.eval.heldout:check",
    data_hint=(
        "eval.heldout.path",
        "a file of instruction records that no cell trains on (eval.heldout.loader names its format, default dolly)",
    ),
    interval="jsweep.eval.heldout:bootstrap_interval",
    interval_basis="bootstrap over samples",
    paired="jsweep.eval.heldout:paired_interval",
)


def load_records(options: dict[str, Any]) -> list[Any]:
    from jsweep.data.load import load_examples
    from jsweep.schema import DatasetSpec

    path = options.get("path")
    spec = DatasetSpec(
        name="heldout",
        loader=options.get("loader") or "dolly",
        path=str(Path(path).expanduser()) if path else str(FIXTURE),
        source="path",
        field_map=dict(options.get("field_map") or {}),
    )
    records = load_examples(spec, builtin_model=True).examples
    limit = options.get("max_samples")
    n = int(limit) if limit is not None else -1
    return records[:n] if n > 0 else records


def check(options: dict[str, Any]) -> list[str]:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        return [f"unknown option '{unknown[0]}' (valid: {', '.join(DEFAULTS)})"]
    try:
        opts = asdict(typed_options(Options, options, "heldout"))
    except ConfigError as exc:
        return [str(exc)]
    try:
        records = load_records(opts)
    except Exception as exc:  # a pre-flight problem, in one line
        return [f"{type(exc).__name__}: {exc}"]
    if any(not hasattr(r, "messages") for r in records):
        return ["the held-out set must be instruction data (not preference pairs)"]
    return []


class HeldOut:
    """Evaluator ``heldout`` (see jsweep.eval.protocols.Evaluator)."""

    check = staticmethod(check)

    def __init__(self, options: dict[str, Any]):
        self.options = {**DEFAULTS, **options}

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]:
        import torch

        from jsweep import registries

        records = load_records(self.options)
        fmt = registries.PROMPT_FORMATS.get(ctx.spec.prompt.format)
        max_len = int(ctx.spec.train.max_length)
        rows = []
        for ex in records:
            prompt, reply = fmt.render(ex, tokenizer=tokenizer, system=ctx.spec.prompt.system)
            p_ids = tokenizer(prompt).input_ids
            r_ids = tokenizer(reply + tokenizer.eos_token, add_special_tokens=False).input_ids
            ids = (p_ids + r_ids)[-max_len:]
            n_reply = min(len(r_ids), len(ids) - 1)
            rows.append((ex.id, ids, n_reply))
        device = next(model.parameters()).device
        out, total_nll, total_tok, total_end = [], 0.0, 0, 0.0
        bs = max(1, int(self.options["batch_size"]))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        with torch.no_grad():
            for i in range(0, len(rows), bs):
                batch = rows[i : i + bs]
                width = max(len(ids) for _, ids, _ in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for j, (_, ids, n_reply) in enumerate(batch):
                    input_ids[j, : len(ids)] = torch.tensor(ids)
                    mask[j, : len(ids)] = 1
                    labels[j, len(ids) - n_reply : len(ids)] = torch.tensor(ids[len(ids) - n_reply :])
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                target = labels[:, 1:].to(device)
                keep = target != -100
                nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
                for j, (rid, ids, _) in enumerate(batch):
                    s, t = float(nll[j].sum()), int(keep[j].sum())
                    end = float(nll[j, len(ids) - 2])  # the reply's last token: the EOS that closes it
                    out.append({"id": rid, "nll": s, "tokens": t, "end_nll": end})
                    total_nll += s
                    total_tok += t
                    total_end += end
        pred_dir = ctx.cell_dir / "predictions"
        pred_dir.mkdir(parents=True, exist_ok=True)
        with open(pred_dir / "heldout.jsonl", "w", encoding="utf-8") as f:
            for row in out:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        loss = total_nll / max(1, total_tok)
        return {
            "heldout/loss": loss,
            "heldout/perplexity": math.exp(min(loss, 50.0)),
            "heldout/text_loss": (total_nll - total_end) / max(1, total_tok - len(out)),
            "heldout/end_loss": total_end / max(1, len(out)),
            "heldout/samples": float(len(out)),
            "heldout/tokens": float(total_tok),
        }


def _rows(cell: Any) -> list[dict[str, Any]] | None:
    if cell.cell_dir is None:
        return None
    path = cell.cell_dir / "predictions" / "heldout.jsonl"
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return values[int(0.025 * (len(values) - 1))], values[math.ceil(0.975 * (len(values) - 1))]


def bootstrap_interval(
    cell: Any, metric: str = "heldout/loss", resamples: int = 200, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of a cell's ``heldout/loss``, resampling its held-out records
    (predictions/heldout.jsonl: per-record NLL and reply tokens)."""
    import random

    if metric != "heldout/loss" or resamples <= 0:
        return None
    rows = _rows(cell)
    if rows is None or len(rows) < 2:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picked = [rows[rng.randrange(len(rows))] for _ in rows]
        tokens = sum(r["tokens"] for r in picked)
        if tokens:
            values.append(sum(r["nll"] for r in picked) / tokens)
    return _percentiles(values) if values else None


def paired_interval(
    a: Any, b: Any, metric: str = "heldout/loss", resamples: int = 200, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of ``heldout/loss(a) - heldout/loss(b)``, resampling the SAME held-out
    records for both cells (a paired bootstrap). None unless both cells scored the same records with the
    same reply tokens (one held-out set, one tokenizer and prompt format)."""
    import random

    if metric != "heldout/loss" or resamples <= 0:
        return None
    ra, rb = _rows(a), _rows(b)
    if not ra or not rb or len(ra) < 2:
        return None
    if [(r["id"], r["tokens"]) for r in ra] != [(r["id"], r["tokens"]) for r in rb]:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picked = [rng.randrange(len(ra)) for _ in ra]
        tokens = sum(ra[i]["tokens"] for i in picked)
        if tokens:
            values.append((sum(ra[i]["nll"] for i in picked) - sum(rb[i]["nll"] for i in picked)) / tokens)
    return _percentiles(values) if values else None
