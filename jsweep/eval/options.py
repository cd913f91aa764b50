"""An evaluator's ``eval.<name>`` options, typed by its Options dataclass with the converter the rest of
the config goes through (jsweep.schema.from_dict): unknown keys and wrong types are one ConfigError naming the key.
The dataclass's defaults are the evaluator's defaults in code (its conf/eval/<name>.yaml states the same
values for users; a test checks that they agree)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def typed_options(cls: type[T], options: Mapping[str, Any] | None, name: str) -> T:
    """``options`` as an instance of the dataclass ``cls`` (defaults filled in); raises ConfigError on an
    unknown key or a value of the wrong type, naming ``eval.<name>.<key>``."""
    from jsweep.schema import from_dict

    return from_dict(cls, dict(options or {}), f"eval.{name}")


def defaults(cls: type) -> dict[str, Any]:
    """The defaults of an Options dataclass, as a plain dict."""
    return dataclasses.asdict(cls())
