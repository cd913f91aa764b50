"""Mixtures of datasets: every mixture-specific rule of jsweep lives here.

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

Budgets (``dataset.budget``) are in :mod:`jsweep.data.budget`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
from collections.abc import Sequence
from typing import Any

from jsweep.data import single
from jsweep.data.budget import budget_examples, take
from jsweep.data.records import LoadReport, digest_examples, is_preference
from jsweep.data.single import LoadedData
from jsweep.data.sources import Source
from jsweep.errors import ConfigError, DataError
from jsweep.paths import CONF_DIR
from jsweep.schema import DatasetSpec, from_dict

MIXTURE = "mixture"
COMPONENT_KEYS = ("preset", "weight", "upsample")  # besides the DatasetSpec keys
INHERITED = ("source", "seed", "on_error")  # taken from the mixture unless the component sets them
_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,(.*))?\}")  # ${oc.env:VAR,default} in a preset


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
    for entry in data.pop("defaults", None) or []:  # a preset extending another one (dolly_10k: [dolly, _self_])
        if isinstance(entry, str) and entry != "_self_":
            merged.update(read_preset(entry))
    for k, v in data.items():
        if isinstance(v, str) and "${" in v:
            env = _ENV.fullmatch(v.strip())
            if not env:
                continue  # ${data_source}, ${seed}: inherited from the mixture
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
        merged.update({k: v for k, v in comp.items() if v is not None})  # null = keep the preset's value
        for label, value in (("weight", weight), ("upsample", upsample)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0
            ):
                raise ConfigError(f"{key}.{label} must be a positive number, got {value!r}")
        if "loader" not in merged:
            raise ConfigError(f"{key}: needs a preset (preset: dolly) or a loader")
        if merged["loader"] == MIXTURE:
            raise ConfigError(f"{key}: a mixture cannot contain another mixture")
        try:
            comp_spec = from_dict(DatasetSpec, merged, key)
        except ConfigError as exc:
            msg = str(exc)
            if msg.startswith("unknown key"):
                msg += f"; a component may also set {', '.join(COMPONENT_KEYS)}"
            raise ConfigError(msg) from None
        out[name] = (
            comp_spec,
            None if weight is None else float(weight),
            None if upsample is None else float(upsample),
        )
    weighted = [n for n, (_, w, _) in out.items() if w is not None]
    if weighted and len(weighted) != len(out):
        missing = [n for n in out if n not in weighted]
        raise ConfigError(
            f"dataset.components: give every component a weight or none "
            f"({', '.join(missing)} {'has' if len(missing) == 1 else 'have'} none)"
        )
    if weighted and any(u is not None for _, _, u in out.values()):
        raise ConfigError("dataset.components: use weight (shares) or upsample (repeat factors), not both")
    return out


def is_mixture(spec: Any) -> bool:
    """Whether a DatasetSpec is a mixture (``loader: mixture``)."""
    return getattr(spec, "loader", None) == MIXTURE


def source(spec: Any, *, builtin_model: bool) -> Source:
    """The Source of a mixture: kind ``mixture``, each component's Source in ``extra["components"]``."""
    comps = {}
    for name, (cs, _, _) in component_specs(spec).items():
        try:
            comps[name] = single.source(cs, builtin_model=builtin_model)
        except DataError as exc:
            raise DataError(
                f"mixture component '{name}': {exc}".replace(
                    "set dataset.path=", f"set dataset.components.{name}.path="
                )
            ) from None
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


def plan_counts(
    sizes: Sequence[int], weights: Sequence[float | None], upsample: Sequence[float | None], total: int | None
) -> list[int]:
    """How many records each component contributes (see the module doc for the rules)."""
    shares = [float(w) for w in weights if w is not None]
    if len(shares) == len(weights):  # every component has a weight
        if total is None:
            s = sum(shares)
            total = math.floor(min(n / (w / s) for n, w in zip(sizes, shares)) + 1e-9)
        return largest_remainder(total, shares)
    natural = [n * (u if u is not None else 1.0) for n, u in zip(sizes, upsample)]
    if total is None:
        return [max(1, round(x)) for x in natural]
    return largest_remainder(total, natural)


def load(spec: Any, *, builtin_model: bool) -> LoadedData:
    """Load every component, mix them in the configured proportions, and return one LoadedData."""
    comps = component_specs(spec)
    src = source(spec, builtin_model=builtin_model)
    report = LoadReport(source=src.describe())
    loaded = {name: single.load(cs, builtin_model=builtin_model) for name, (cs, _, _) in comps.items()}
    kinds = {name: is_preference(d.examples) for name, d in loaded.items()}
    if len(set(kinds.values())) > 1:
        pref = [n for n, k in kinds.items() if k]
        raise DataError(
            f"mixture '{spec.name}' mixes preference pairs ({', '.join(pref)}) with instruction data "
            f"({', '.join(n for n, k in kinds.items() if not k)})"
        )
    total = budget_examples(spec.budget) or spec.n
    names = list(comps)
    counts = plan_counts(
        [len(loaded[n].examples) for n in names], [comps[n][1] for n in names], [comps[n][2] for n in names], total
    )
    mixed: list[Any] = []
    components: dict[str, dict[str, Any]] = {}
    for i, (name, count) in enumerate(zip(names, counts)):
        data = loaded[name]
        report.merge(data.report, prefix=f"{name}: ")
        part = take(data.examples, count, spec.seed + i) if count else []
        part = [
            dataclasses.replace(
                ex,
                id=f"{name}/{ex.id}",
                meta={
                    **ex.meta,
                    "component": name,
                    **({"repeat_of": f"{name}/{ex.meta['repeat_of']}"} if "repeat_of" in ex.meta else {}),
                },
            )
            for ex in part
        ]
        mixed.extend(part)
        components[name] = {
            **data.provenance(),
            "n": len(part),
            "available": len(data.examples),
            "source_digest": data.digest,
            "digest": digest_examples(part),
            "weight": comps[name][1],
            "upsample": comps[name][2],
            "repeats": round(len(part) / max(1, len(data.examples)), 4),
            "license": comps[name][0].license,
            "name": comps[name][0].name,
        }
    if not mixed:
        raise DataError(f"mixture '{spec.name}' has no records")
    random.Random(spec.seed).shuffle(mixed)
    for name in names:
        components[name]["share"] = round(components[name]["n"] / len(mixed), 6)
    report.kept = len(mixed)
    return LoadedData(mixed, report, src, digest_examples(mixed), name=spec.name, components=components)


def records(spec: Any) -> str:
    """``sft`` or ``preference`` when every component's loader yields that, else ``mixed`` (refused by
    :func:`problems`)."""
    kinds = {single.records(cs) for cs, _, _ in component_specs(spec).values()}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def problems(spec: Any, where: str = "dataset") -> list[str]:
    """The mixture's config problems (no data read): its components (keys, weights, presets), each
    component's own dataset problems, and components of both record kinds."""
    try:
        comps = component_specs(spec)
    except ConfigError as exc:
        return [str(exc)]
    out = [p for name, (cs, _, _) in comps.items() for p in single.problems(cs, f"{where}.components.{name}")]
    if not out and records(spec) == "mixed":
        out.append(f"mixture '{spec.name}' mixes preference-pair datasets with instruction datasets")
    return out


# The names the rest of jsweep has known these by (jsweep.registries.LOADERS["mixture"] is load_mixture).
mixture_source = source
load_mixture = load
