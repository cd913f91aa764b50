"""Error types. Every user-facing error is a JsweepError with a one-line message."""

from __future__ import annotations


class JsweepError(Exception):
    """Base class of errors jsweep reports to the user as a clean one-line message."""


class ConfigError(JsweepError):
    """A bad config value, unknown option or impossible combination (found before any work starts)."""


class DataError(JsweepError):
    """A malformed record or missing data file. The message names the file, the record and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: int | str | None = None,
        field: str | None = None,
        kind: str | None = None,
    ):
        # kind: a short, stable reason ("empty text", "duplicate id", ...) used to count skipped records.
        self.file, self.record, self.field, self.reason = file, record, field, message
        self.kind = kind or message.split(" (")[0]
        where = []
        if file:
            where.append(str(file))
        if record is not None:
            where.append(f"record {record}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class PreflightError(JsweepError):
    """One or more problems found while planning a sweep. Nothing was launched."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) found before launching; nothing ran:\n{lines}")


class TrackingUnreachable(JsweepError):
    """The tracking store cannot be reached when a sweep starts (nothing was launched)."""


class LauncherError(JsweepError):
    """The launcher itself failed mid-sweep (a full disk, an unwritable directory). Its cells were
    stopped and recorded; running the sweep again resumes them."""
