"""Lazy registries: a name maps to "module:attribute", imported only when used.

Planning a sweep only needs the names (to validate configs), so listing or checking
a registry never imports torch. ``get`` imports the implementation on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from jsweep.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entries: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, str] = dict(entries or {})
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str | Any) -> None:
        """Register ``target`` (an object, or a "module:attr" string imported lazily) under ``name``."""
        if name in self._entries or name in self._loaded:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        if isinstance(target, str):
            self._entries[name] = target
        else:
            self._loaded[name] = target

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._loaded))

    def in_order(self) -> list[str]:
        """The names in the order they were registered (the registry file's order, then later ones)."""
        return list(dict.fromkeys([*self._entries, *self._loaded]))

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test that registered an example part takes it out again)."""
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def where(self, attr: str) -> Flagged:
        """The names whose entry has ``attr`` set, looked up when asked (``name in registry.where("judged")``)."""
        return Flagged(self, attr)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def problem(self, name: str, key: str | None = None) -> str | None:
        """The error for an unknown ``name`` (listing the valid choices), or None when it is registered."""
        if name in self:
            return None
        where = f" for {key}" if key else ""
        return f"unknown {self.kind} '{name}'{where} (choose from: {', '.join(self.names())})"

    def get(self, name: str) -> T:
        if (problem := self.problem(name)) is not None:
            raise ConfigError(problem)
        if name not in self._loaded:
            module, _, attr = self._entries[name].partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._loaded[name] = obj
        return self._loaded[name]


class Flagged:
    """A live view of a registry: the names whose entry (imported when asked) has a true ``attr``."""

    def __init__(self, registry: Registry, attr: str):
        self.registry, self.attr = registry, attr

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str) and name in self.registry and bool(getattr(self.registry.get(name), self.attr, False))
        )

    def __iter__(self) -> Iterator[str]:
        return iter([n for n in self.registry.in_order() if n in self])
