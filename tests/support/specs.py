"""The spec builder: a cell spec composed by Hydra from conf/ with the given overrides, typed and checked."""

from __future__ import annotations


def spec_for(*overrides: str):
    """``compose_spec`` on ``overrides`` (e.g. ``spec_for("dataset=dolly", "lr=1e-4")``)."""
    from jsweep.compose import compose_spec

    return compose_spec(list(overrides))
