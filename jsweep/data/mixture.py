"""Mixtures of datasets, and equal data budgets.

Mixture (``loader: mixture``)
-----------------------------
``dataset.components`` maps a component name to a component: the keys of a dataset preset (any
DatasetSpec key), optionally ``preset: <conf/dataset/NAME.yaml>`` to start from a preset, plus
how much of it goes in:

```yaml
loader: mixture
components:
  dolly:    {preset: dolly, weight: 1}
  ichikara: {preset: ichikara, weight: 1, path: /data/ichikara}   # any preset key can be overridden
  oasst:    {preset: oasst, weight: 2}
```

- ``weight`` (every component, or none): the component's share of the mixture, normalised over
  components. The mixture's size is ``dataset.n`` (or an ``examples:N`` budget); when neither is
  set it is the largest size at which no component has to repeat records. A component that
  has fewer records than its share is upsampled (repeated, then a seeded random remainder).
  Counts are rounded by largest remainder, so they add up exactly.
- ``upsample`` (used when no component has a weight): a repeat factor on the component's records
  (2 = every record twice, 1.5 = once plus a seeded random half, 0.5 = a random half). Without
  ``dataset.n`` the mixture is the concatenation; with it, the same proportions scaled to n.
- a component's own ``n`` subsets it before mixing (e.g. ``dolly: {preset: dolly, n: 10000}``), and its
  own ``budget: examples:N`` fixes its size before mixing.

A component inherits ``source``, ``seed`` and ``on_error`` from the mixture (so ``data_source``
and ``dataset.on_error=skip`` apply to every component) unless it sets them itself. Repeated
records get ids ``<id>#2``, ``#3`` ... and ``meta["repeat_of"]``; every id is prefixed with the
component name (``dolly/12``) and ``meta["component"]`` names it. The result is shuffled with
the seed so the held-out split and training order mix the sources; the held-out split keeps all
copies of a record on one side (see ``split_train_eval``). Components must all be instruction
data or all preference pairs.

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
import math
import os
import random
import re
from typing import Any, Sequence

from jsweep.errors import ConfigError, DataError
from jsweep.paths import CONF_DIR

MIXTURE = "mixture"
COMPONENT_KEYS = ("preset", "weight", "upsample")       # besides the DatasetSpec keys
INHERITED = ("source", "seed", "on_error")               # taken from the mixture unless the component sets them
BUDGET_KINDS = ("examples", "tokens", "steps")
_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,(.*))?\}")      # ${oc.env:VAR,default} in a preset


# --------------------------------------------------------------------------- budgets

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
    from jsweep.data.load import subset

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


# --------------------------------------------------------------------------- components

def read_preset(name: str) -> dict[str, Any]:
    """A dataset preset's keys (conf/dataset/<name>.yaml), as a component of a mixture sees them.
    ``${oc.env:VAR,default}`` is resolved from the environment (ichikara's JSWEEP_ICHIKARA_PATH);
    other interpolations (``${data_source}``, ``${seed}``) are left out: the component inherits
    them from the mixture. A preset extending another (``defaults: [dolly, _self_]``) is merged."""
    import yaml

    path = CONF_DIR / "dataset" / f"{name}.yaml"
    if not path.exists():
        options = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))
        raise ConfigError(f"unknown dataset preset '{name}' (choose from: {', '.join(options)})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    merged: dict[str, Any] = {}
    for entry in data.pop("defaults", None) or []:      # a preset extending another one (dolly_10k: [dolly, _self_])
        if isinstance(entry, str) and entry != "_self_":
            merged.update(read_preset(entry))
    for k, v in data.items():
        if isinstance(v, str) and "${" in v:
            env = _ENV.fullmatch(v.strip())
            if not env:
                continue                                  # ${data_source}, ${seed}: inherited from the mixture
            value = os.environ.get(env.group(1))
            if value is None:
                value = yaml.safe_load(env.group(2)) if env.group(2) is not None else None
            v = value
        merged[k] = v
    return merged


def component_specs(spec: Any) -> dict[str, tuple[Any, float | None, float | None]]:
    """The mixture's components as (DatasetSpec, weight, upsample), each validated like a dataset.

    Raises ConfigError naming the component for an unknown key, a nested mixture, a bad weight,
    or weights given for some components only.
    """
    from jsweep.spec import DatasetSpec, _from_dict

    if not spec.components:
        raise ConfigError(f"dataset '{spec.name}' is a mixture with no components (set dataset.components)")
    out: dict[str, tuple[Any, float | None, float | None]] = {}
    for name, comp in spec.components.items():
        key = f"dataset.components.{name}"
        if not isinstance(comp, dict):
            raise ConfigError(f"{key}: expected a mapping, got {comp!r}")
        comp = dict(comp)
        preset = comp.pop("preset", None)
        weight, upsample = comp.pop("weight", None), comp.pop("upsample", None)
        merged: dict[str, Any] = dict(read_preset(str(preset))) if preset else {}
        merged.update({k: getattr(spec, k) for k in INHERITED})
        merged.setdefault("name", name)
        merged.update({k: v for k, v in comp.items() if v is not None})    # null = keep the preset's value
        for label, value in (("weight", weight), ("upsample", upsample)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ConfigError(f"{key}.{label} must be a positive number, got {value!r}")
        if "loader" not in merged:
            raise ConfigError(f"{key}: needs a preset (preset: dolly) or a loader")
        if merged["loader"] == MIXTURE:
            raise ConfigError(f"{key}: a mixture cannot contain another mixture")
        try:
            comp_spec = _from_dict(DatasetSpec, merged, key)
        except ConfigError as exc:
            msg = str(exc)
            if msg.startswith("unknown key"):
                msg += f"; a component may also set {', '.join(COMPONENT_KEYS)}"
            raise ConfigError(msg) from None
        out[name] = (comp_spec, None if weight is None else float(weight), None if upsample is None else float(upsample))
    weighted = [n for n, (_, w, _) in out.items() if w is not None]
    if weighted and len(weighted) != len(out):
        missing = [n for n in out if n not in weighted]
        raise ConfigError(f"dataset.components: give every component a weight or none "
                          f"({', '.join(missing)} {'has' if len(missing) == 1 else 'have'} none)")
    if weighted and any(u is not None for _, _, u in out.values()):
        raise ConfigError("dataset.components: use weight (shares) or upsample (repeat factors), not both")
    return out


def mixture_source(spec: Any, *, builtin_model: bool):
    """The Source of a mixture: kind ``mixture``, each component's Source in ``extra["components"]``."""
    from jsweep.data.sources import Source, resolve_source

    comps = {}
    for name, (cs, _, _) in component_specs(spec).items():
        try:
            comps[name] = resolve_source(cs, builtin_model=builtin_model)
        except DataError as exc:
            raise DataError(f"mixture component '{name}': {exc}".replace("set dataset.path=",
                            f"set dataset.components.{name}.path=")) from None
    location = "mixture(" + ", ".join(f"{n}={s.describe()}" for n, s in comps.items()) + ")"
    return Source("mixture", location, extra={"components": comps})


def largest_remainder(total: int, shares: Sequence[float]) -> list[int]:
    """Integer counts proportional to ``shares`` that add up to exactly ``total``."""
    s = sum(shares)
    raw = [total * w / s for w in shares]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))[: total - sum(counts)]:
        counts[i] += 1
    return counts


def plan_counts(sizes: Sequence[int], weights: Sequence[float | None], upsample: Sequence[float | None],
                total: int | None) -> list[int]:
    """How many records each component contributes (see the module doc for the rules)."""
    if all(w is not None for w in weights):
        shares = [float(w) for w in weights]            # type: ignore[arg-type]
        if total is None:
            s = sum(shares)
            total = int(math.floor(min(n / (w / s) for n, w in zip(sizes, shares)) + 1e-9))
        return largest_remainder(total, shares)
    natural = [n * (u if u is not None else 1.0) for n, u in zip(sizes, upsample)]
    if total is None:
        return [max(1, int(round(x))) for x in natural]
    return largest_remainder(total, natural)


def load_mixture(spec: Any, *, builtin_model: bool):
    """Load every component, mix them in the configured proportions, and return one LoadedData."""
    from jsweep.data.load import LoadedData, load_examples
    from jsweep.data.records import LoadReport, digest_examples, is_preference

    comps = component_specs(spec)
    source = mixture_source(spec, builtin_model=builtin_model)
    report = LoadReport(source=source.describe())
    loaded = {name: load_examples(cs, builtin_model=builtin_model) for name, (cs, _, _) in comps.items()}
    kinds = {name: is_preference(d.examples) for name, d in loaded.items()}
    if len(set(kinds.values())) > 1:
        pref = [n for n, k in kinds.items() if k]
        raise DataError(f"mixture '{spec.name}' mixes preference pairs ({', '.join(pref)}) with instruction data "
                        f"({', '.join(n for n, k in kinds.items() if not k)})")
    total = budget_examples(spec.budget) or spec.n
    names = list(comps)
    counts = plan_counts([len(loaded[n].examples) for n in names], [comps[n][1] for n in names],
                         [comps[n][2] for n in names], total)
    mixed: list[Any] = []
    components: dict[str, dict[str, Any]] = {}
    for i, (name, count) in enumerate(zip(names, counts)):
        data = loaded[name]
        report.merge(data.report, prefix=f"{name}: ")
        part = take(data.examples, count, spec.seed + i) if count else []
        part = [dataclasses.replace(ex, id=f"{name}/{ex.id}", meta={**ex.meta, "component": name,
                **({"repeat_of": f"{name}/{ex.meta['repeat_of']}"} if "repeat_of" in ex.meta else {})})
                for ex in part]
        mixed.extend(part)
        components[name] = {**data.provenance(), "n": len(part), "available": len(data.examples),
                            "source_digest": data.digest, "digest": digest_examples(part),
                            "weight": comps[name][1], "upsample": comps[name][2],
                            "repeats": round(len(part) / max(1, len(data.examples)), 4),
                            "license": comps[name][0].license, "name": comps[name][0].name}
    if not mixed:
        raise DataError(f"mixture '{spec.name}' has no records")
    random.Random(spec.seed).shuffle(mixed)
    for name in names:
        components[name]["share"] = round(components[name]["n"] / len(mixed), 6)
    report.kept = len(mixed)
    return LoadedData(mixed, report, source, digest_examples(mixed), name=spec.name, components=components)
