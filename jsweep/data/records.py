"""The common record types every loader produces."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass
class Message:
    role: Role
    content: str


@dataclass
class Example:
    """One training conversation. The last message is the assistant reply that is the target.

    ``input`` is optional context that belongs to the first user turn (dolly/alpaca "input"),
    kept apart so formats that have an input section (### 入力:) can render it there.
    """

    id: str
    messages: list[Message]
    input: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def prompt_messages(self) -> list[Message]:
        return self.messages[:-1]

    @property
    def target(self) -> str:
        return self.messages[-1].content

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PreferenceExample:
    """One preference pair for DPO: a prompt conversation (ending with a user turn) and two replies.

    ``prompt`` may hold earlier turns (multi-turn hh-rlhf); ``chosen`` is the preferred reply and
    ``rejected`` the dispreferred one, both plain text without EOS.
    """

    id: str
    prompt: list[Message]
    chosen: str
    rejected: str
    meta: dict = field(default_factory=dict)

    @property
    def prompt_messages(self) -> list[Message]:
        return self.prompt

    def to_json(self) -> dict:
        return asdict(self)


# Anything a loader yields: an SFT conversation or a preference pair.
Record = Example | PreferenceExample


def is_preference(examples: Sequence[Record]) -> bool:
    """True when the (non-empty) list holds preference pairs."""
    return bool(examples) and isinstance(examples[0], PreferenceExample)


def example_texts(ex: Record) -> list[str]:
    """Every text of a record (turns, input, replies): what contamination and budgets look at."""
    if isinstance(ex, PreferenceExample):
        return [m.content for m in ex.prompt] + [ex.chosen, ex.rejected]
    return [m.content for m in ex.messages] + ([ex.input] if ex.input else [])


@dataclass
class LoadReport:
    """What a loader read, kept, and dropped (with reasons), for logging and provenance.

    ``dropped`` counts skipped records by reason (``on_error=skip``, and records a format drops by
    rule, such as deleted oasst messages); ``errors`` keeps the first few full messages (file,
    record, field) so a skipped record can be found.
    """

    source: str
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unit: str = "records"  # what read/dropped count: records, or messages (oasst trees, whose kept are conversations)

    MAX_ERRORS = 20

    def drop(self, reason: str, message: str | None = None) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if message and len(self.errors) < self.MAX_ERRORS:
            self.errors.append(message)

    def merge(self, other: LoadReport, prefix: str = "") -> None:
        """Add another report's counts (a mixture's component), reasons prefixed with ``prefix``."""
        self.read += other.read
        for reason, count in other.dropped.items():
            key = f"{prefix}{reason}"
            self.dropped[key] = self.dropped.get(key, 0) + count
        self.errors.extend(other.errors[: max(0, self.MAX_ERRORS - len(self.errors))])


def digest_examples(examples: Sequence[Record]) -> str:
    """Content digest of examples or preference pairs (order-sensitive): changes whenever the data changes."""
    h = hashlib.sha256()
    for ex in examples:
        payload = ex.to_json()
        if isinstance(ex, PreferenceExample):
            payload = {"kind": "preference", **payload}
        h.update(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
