"""How many records a dataset gives: ``dataset.n`` subsets, and equal data budgets.

Equal budgets (``dataset.budget``)
----------------------------------
So that a comparison of datasets is not just a comparison of dataset sizes, every cell of a
comparison can get the same budget:

- ``examples:N``: the dataset (before the held-out split) has exactly N records: a seeded subset
  when it has more, repeats when it has fewer. Applied at load time, so the data digest covers it.
- ``tokens:N``: the training split is cut or repeated (seeded; whole passes before any record
  repeats) until it holds N tokens as the model's tokenizer counts them (prompt + completion,
  after max_length truncation; for DPO prompt+chosen plus prompt+rejected). Applied by the trainer,
  which has the tokenizer; logged as data/budget/tokens and data/budget/examples.
- ``steps:N``: every cell trains N optimizer steps (train.max_steps = N; the trainer cycles over
  the data as needed).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Any

from jsweep.errors import ConfigError, DataError

BUDGET_KINDS = ("examples", "tokens", "steps")


def subset(examples: list[Any], n: int | None, seed: int) -> list[Any]:
    """A reproducible random subset of ``n`` examples, in their original order (all of them when n
    is None or >= len). Subsets are nested: with the same seed, the subset of n is contained in the
    subset of any larger n (a learning curve adds data, it does not redraw it)."""
    if n is None or n >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def parse_budget(budget: str | None) -> tuple[str, int] | None:
    """``"tokens:50000"`` -> ("tokens", 50000). Accepts k/M suffixes (``tokens:50k``). None/"" -> None."""
    if budget in (None, "", "none", "null"):
        return None
    m = re.fullmatch(r"\s*(\w+)\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*", str(budget))
    if not m or m.group(1) not in BUDGET_KINDS:
        raise ConfigError(f"dataset.budget must be examples:N, tokens:N or steps:N (e.g. tokens:50000), got {budget!r}")
    value = float(m.group(2)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(3).lower()]
    if value < 1 or value != int(value):
        raise ConfigError(f"dataset.budget must be a positive whole number, got {budget!r}")
    return m.group(1), int(value)


def budget_steps(budget: str | None) -> int | None:
    parsed = parse_budget(budget)
    return parsed[1] if parsed and parsed[0] == "steps" else None


def budget_tokens(budget: str | None) -> int | None:
    parsed = parse_budget(budget)
    return parsed[1] if parsed and parsed[0] == "tokens" else None


def budget_examples(budget: str | None) -> int | None:
    parsed = parse_budget(budget)
    return parsed[1] if parsed and parsed[0] == "examples" else None


def _copy(ex: Any, k: int) -> Any:
    """The k-th copy of a record (k = 0 is the record itself)."""
    if k == 0:
        return ex
    origin = ex.meta.get("repeat_of", ex.id)
    return dataclasses.replace(ex, id=f"{origin}#{k + 1}", meta={**ex.meta, "repeat_of": origin})


def take(examples: Sequence[Any], count: int, seed: int) -> list[Any]:
    """Exactly ``count`` records: a seeded subset (in the original order) when there are enough,
    else whole copies plus a seeded subset for the remainder. Copies are marked (see _copy)."""
    if not examples:
        raise DataError("cannot take records from an empty dataset")
    if count <= len(examples):
        return subset(list(examples), count, seed)
    full, rest = divmod(count, len(examples))
    out = [_copy(ex, k) for k in range(full) for ex in examples]
    out += [_copy(ex, full) for ex in subset(list(examples), rest, seed)]
    return out


def token_budget_indices(lengths: Sequence[int], budget: int, seed: int) -> list[int]:
    """Indices of records (repeats allowed) whose token lengths add up to ``budget``.

    Records are taken in a seeded random order; when all are used, another pass starts in a new
    seeded order, so no record repeats before every record was used once. Stops at the first
    record that reaches the budget (so the total is at least ``budget``, overshooting by less
    than one record)."""
    if not lengths or max(lengths) <= 0:
        return []
    out: list[int] = []
    total, rnd = 0, random.Random(seed)
    while total < budget:
        order = list(range(len(lengths)))
        rnd.shuffle(order)
        for i in order:
            out.append(i)
            total += lengths[i]
            if total >= budget:
                break
    return out
