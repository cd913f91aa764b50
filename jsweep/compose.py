"""The Hydra boundary: compose configs and turn them into typed cell specs.

Only this module, the CLI and the launcher plugin import Hydra/OmegaConf. Everything they
produce is a :class:`jsweep.schema.CellSpec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from omegaconf import Container, DictConfig, OmegaConf, open_dict

from jsweep.errors import ConfigError
from jsweep.paths import CONF_DIR
from jsweep.schema import CellSpec, cell_from_dict

GROUPS = ("model", "dataset", "method", "eval", "distributed", "launcher", "tracking", "judge", "experiment")


def group_options(group: str) -> list[str]:
    """Option names of a config group: the YAML files of conf/<group>/."""
    d = CONF_DIR / group
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def to_spec(cfg: DictConfig | dict[str, Any], overrides: Sequence[str] = ()) -> CellSpec:
    """Resolve a composed config and build the typed cell spec (the ``hydra`` node is dropped)."""
    if isinstance(cfg, DictConfig):
        # Resolve node by node, leaving out the hydra node (it has mandatory values only a Hydra run fills).
        data = {}
        for key in cfg:
            if key == "hydra":
                continue
            node = cfg._get_node(key)
            data[str(key)] = (
                OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
                if isinstance(node, Container)
                else cfg[key]
            )
    else:
        data = {k: v for k, v in cfg.items() if k != "hydra"}
    data["overrides"] = list(overrides)
    return cell_from_dict(data)


class GridComposer:
    """Each cell's config of a large grid without Hydra's full composition per cell.

    Hydra composes a config in two parts: the defaults list (config group choices such as
    ``dataset=dolly``) picks and merges the YAML files, then the other overrides (``lr=1e-4``,
    ``train.epochs=2``) are applied to the merged config. The first part is what costs (about 0.3 s a
    cell, twice per cell in Hydra's launcher path); it depends only on a cell's group choices, which
    most grids share. So the merged config is composed once per distinct set of group overrides
    (``compose_groups``), each cell's other overrides are applied with Hydra's own override code, the
    config is resolved, and the overrides are taken back. Only the top-level sections a cell touches,
    or that hold interpolations, are resolved again per cell; the others are copied from the base.
    Overrides that add or delete keys take the slower path (a copy of the base config).
    """

    def __init__(self, compose_groups, is_group=None):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.compose_groups = compose_groups
        self.is_group = is_group or (lambda key: key.split("/")[0] in GROUPS or (CONF_DIR / key).is_dir())
        self.parser = OverridesParser.create()
        self.parsed: dict[str, Any] = {}
        self.bases: dict[tuple[str, ...], tuple[DictConfig, dict[str, Any], dict[str, set[str] | None]]] = {}

    def _parse(self, text: str) -> Any:
        if text not in self.parsed:
            self.parsed[text] = self.parser.parse_overrides([text])[0]
        return self.parsed[text]

    def _base(self, groups: tuple[str, ...]) -> tuple[DictConfig, dict[str, Any], dict[str, set[str] | None]]:
        """The merged config of these group choices, its sections resolved, and for each section holding
        interpolations the top-level sections they refer to (None: not known, resolve it every time)."""
        import re

        if groups not in self.bases:
            cfg = self.compose_groups(list(groups))
            resolved: dict[str, Any] = {}
            dynamic: dict[str, set[str] | None] = {}
            for key in cfg:
                if key == "hydra":
                    continue
                node = cfg._get_node(key)
                raw = repr(
                    OmegaConf.to_container(node, resolve=False) if isinstance(node, Container) else node._value()
                )
                if "${" in raw:
                    refs: set[str] = set()
                    for m in re.finditer(r"\$\{([^}]*)\}", raw):
                        inner = m.group(1)
                        if re.fullmatch(r"[A-Za-z_][\w.]*", inner):
                            refs.add(inner.split(".")[0])  # ${section.key}
                        elif not re.fullmatch(r"oc\.env:[^${}]*", inner):
                            dynamic[str(key)] = None  # anything else: always resolved again
                            break
                    else:
                        dynamic[str(key)] = refs
                resolved[str(key)] = (
                    OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
                    if isinstance(node, Container)
                    else cfg[key]
                )
            self.bases[groups] = (cfg, resolved, dynamic)
        return self.bases[groups]

    def spec(self, overrides: Sequence[str], label: Sequence[str] = ()) -> CellSpec:
        import copy

        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        groups, values = [], []
        for text in overrides:
            o = self._parse(text)
            key = o.key_or_group
            if key.startswith("hydra") or o.package is not None or self.is_group(key):
                groups.append(text)
            else:
                values.append(o)
        cfg, resolved, dynamic = self._base(tuple(groups))
        plain = all(not (o.is_add() or o.is_force_add() or o.is_delete()) for o in values)
        if not plain:  # adds or deletes keys: work on a copy
            cfg = copy.deepcopy(cfg)
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            return to_spec(cfg, label)
        saved: list[tuple[Any, str, Any]] = []
        touched: set[str] = set()
        try:
            for o in values:
                key = o.key_or_group
                parent_key, _, leaf = key.rpartition(".")
                parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
                if not isinstance(parent, DictConfig) or leaf not in parent:
                    raise KeyError(key)
                node = parent._get_node(leaf)
                assert node is not None  # `leaf in parent` above
                saved.append((parent, leaf, node._value()))
                touched.add(key.split(".")[0])
            while True:  # and the sections whose interpolations read them
                more = {k for k, refs in dynamic.items() if k not in touched and (refs is None or refs & touched)}
                if not more:
                    break
                touched |= more
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            data = {k: copy.deepcopy(v) for k, v in resolved.items() if k not in touched}
            for key in touched:
                node = cfg._get_node(key)
                data[key] = (
                    OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
                    if isinstance(node, Container)
                    else cfg[key]
                )
        except KeyError:  # a key the base lacks: Hydra's path names it
            cfg = copy.deepcopy(self._base(tuple(groups))[0])
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            return to_spec(cfg, label)
        finally:
            for parent, leaf, raw in reversed(saved):
                with open_dict(parent):
                    parent[leaf] = raw
        data["overrides"] = list(label)
        return cell_from_dict(data)


def varying_overrides(job_overrides: Sequence[Sequence[str]]) -> list[list[str]]:
    """For each job, only the overrides whose value differs between jobs (the grid axes)."""
    keys_values: dict[str, set[str]] = {}
    for ov in job_overrides:
        for o in ov:
            k, _, v = o.partition("=")
            keys_values.setdefault(k, set()).add(v)
    axes = {k for k, vs in keys_values.items() if len(vs) > 1}
    return [[o for o in ov if o.partition("=")[0] in axes] for ov in job_overrides]


# --------------------------------------------------------------------------- override pre-checks


def _values(override: Any) -> list[Any]:
    """Every value an override can take (sweeps expanded; a list value counts as one value)."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    if override.is_sweep_override():
        sweep = override.value()
        if isinstance(sweep, ChoiceSweep):
            return list(sweep.list)
        if isinstance(sweep, RangeSweep):
            return list(override.sweep_iterator())
        return []  # interval sweeps (for optimisers) are checked when composed
    return [override.value()]


def _option_names(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


# Settings of the whole sweep whose value is a list. ``launcher.gpus=0,1`` means GPUs 0 and 1, never a
# sweep over two launchers, so it is passed to Hydra as ``launcher.gpus=[0,1]``.
LIST_SETTINGS = ("launcher.gpus",)


def list_settings(argv: Iterable[str]) -> list[str]:
    """Bracket the comma-separated values of LIST_SETTINGS (``launcher.gpus=0,1`` -> ``launcher.gpus=[0,1]``),
    and quote cell-id prefixes (``launcher.rerun=0123,12e4`` -> ``launcher.rerun=['0123','12e4']``: unquoted,
    Hydra would read them as the numbers 123 and 120000.0, which match no cell)."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+~") in LIST_SETTINGS and "," in value and not value.lstrip().startswith("["):
            arg = f"{key}=[{value}]"
        elif eq and key.lstrip("+~") == "launcher.rerun" and value.strip().lower() not in ("true", "false", "null", ""):
            items = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
            quoted = [v if v[0] in "'\"" else repr(v) for v in items]
            arg = f"{key}=[{','.join(quoted)}]"
        out.append(arg)
    return out


def precheck_overrides(overrides: Iterable[str]) -> None:
    """Check command-line overrides before Hydra runs; raise ConfigError with a one-line message.

    Catches unknown group options (``dataset=nope``), unknown keys (``foo=1``), and an lr
    that is not a positive number, for every value of a sweep.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = list(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        raise ConfigError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None

    group_choices: list[str] = []
    key_overrides = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra") or o.is_delete():
            continue
        group = key.split("@")[0]
        if group in GROUPS or (CONF_DIR / group).is_dir():
            options = group_options(group)
            values = _values(o)
            for value in values:
                for name in _option_names(value):
                    if name not in options:
                        raise ConfigError(f"unknown {group} '{name}' (choose from: {', '.join(options)})")
            if values:
                first = values[0]
                group_choices.append(f"{key}={_render(first)}")
            continue
        key_overrides.append(o)

    if not key_overrides:
        return
    base = compose(group_choices)
    for o in key_overrides:
        key = o.key_or_group
        if not o.is_add() and not o.is_force_add() and OmegaConf.select(base, key, default=_MISSING) is _MISSING:
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(base, parent) if parent else base
            valid = sorted(map(str, node.keys())) if isinstance(node, DictConfig) else []
            hint = f" (valid keys{' under ' + parent if parent else ''}: {', '.join(valid)})" if valid else ""
            raise ConfigError(f"unknown key '{key}'{hint}")
        if key == "output_root":  # Hydra creates the sweep directory under it before jsweep runs
            from jsweep.paths import check_output_root

            for value in _values(o):
                if problem := check_output_root(str(value)):
                    raise ConfigError(problem)
        if key in ("lr", "method.lr"):
            for value in _values(o):
                number = _numeric(value)
                if number is None or not number > 0 or number != number:
                    raise ConfigError(f"{key} must be a positive number, got '{value}'")


_MISSING = object()


def _render(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the primary config with overrides, outside of a Hydra app (tests, checks, tools)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=False)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


def compose_spec(overrides: Sequence[str] = ()) -> CellSpec:
    """Compose and convert in one step (used by tests and ``jsweep eval``)."""
    return to_spec(compose(overrides), overrides)
