"""Secrets never leave the process: one redaction applied at every exit.

Every route by which text leaves jsweep goes through :func:`redact` (structures) or
:func:`redact_text` (strings): MLflow params and tags, the logged ``config.yaml``, the state files
(``cell.json``, ``status.json``, ``summary.json``, journals; all written by ``jsweep.files``),
Hydra's ``multirun.yaml``, each cell's ``cell.log`` (third-party lines too, such as MLflow's own
"View run at <url>" line) and the console.

What counts as a secret:
- the value of a key that looks like a credential (``hf_token``, ``api_key``, ``password``,
  ``secret``, ``credentials``, ``auth``...), whatever section it is in (open sections such as
  ``model.arch`` or ``experiment`` included), and the same key in ``key=value`` text (raw Hydra
  overrides, log lines);
- the user information of a URI (``http://user:password@host`` -> ``http://***@host``);
- values shaped like a known token (``hf_...``, ``sk-...``);
- any value found by the rules above in this process or handed down by the launcher
  (:func:`remember`), wherever it appears later in text.

Keys such as ``pad_token_id`` or ``max_new_tokens`` are not credentials and stay.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# The last segment of a key names a credential ...
_SECRET_KEY = re.compile(
    r"(token|api[_-]?key|apikey|secret|password|passwd|passphrase|credential|auth|"
    r"private[_-]?key|access[_-]?key|cookie|session[_-]?key)",
    re.I,
)
# ... unless it names something about tokens or a place where a credential is kept.
_NOT_SECRET = re.compile(
    r"(_ids?|_len|_length|_count|_counts|tokens|_toks|tokenizer\w*|_accuracy|_per_second|tokens_per_\w+"
    r"|_dir|_path|_file|_style|_type|_format|_env|_var)$|^(author|authors)$"
    r"|^(pad|eos|bos|unk|sep|cls|mask)_token$",
    re.I,
)
_SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,})\b")
# scheme://user[:password]@host  ->  scheme://***@host
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s@'\"<>]+)@")
# key=value, key: value, "key": "value" (raw overrides, log lines, dumped dicts)
_ASSIGNMENT = re.compile(
    r"""(?P<key>[+~]{0,2}[A-Za-z_][\w.\-]*)(?P<q1>["']?)(?P<sep>\s*[=:]\s*)(?P<q2>["']?)"""
    r"""(?P<value>[^\s"'}\]]+)"""
)

_known: set[str] = set()
ENV = "JSWEEP_SECRETS"  # the launcher hands a cell the secret values of its config here (never on disk)


def is_secret_key(key: str) -> bool:
    last = str(key).lstrip("+~").rsplit(".", 1)[-1]
    return bool(_SECRET_KEY.search(last)) and not _NOT_SECRET.search(last)


def is_secret(key: str, value: Any = None) -> bool:
    """A key that names a credential, or a value shaped like a known token."""
    return is_secret_key(key) or (isinstance(value, str) and bool(_SECRET_VALUE.fullmatch(value.strip())))


def remember(values: Iterable[Any]) -> None:
    """Redact these literal values wherever they appear from now on (in this process)."""
    for v in values:
        if isinstance(v, str) and len(v) >= 5 and v != MASK:
            _known.add(v)


def forget(values: Iterable[Any]) -> None:
    """Stop redacting these remembered values (the inverse of ``remember``)."""
    _known.difference_update(values)


def _userinfo_secrets(text: str) -> list[str]:
    out = []
    for m in _USERINFO.finditer(text):
        info = m.group(2)
        out.append(info)
        if ":" in info:
            out.append(info.split(":", 1)[1])
    return out


def redact_text(text: Any) -> Any:
    """``text`` with URI user information, credential assignments, token-shaped and remembered
    values masked. Non-strings are returned unchanged."""
    if not isinstance(text, str) or not text:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _SECRET_VALUE.sub(MASK, text)

    def assignment(m: re.Match) -> str:
        if not is_secret_key(m.group("key")) or m.group("value") == MASK:
            return m.group(0)
        return m.group(0)[: m.start("value") - m.start(0)] + MASK

    return _ASSIGNMENT.sub(assignment, text)


def redact(obj: Any) -> Any:
    """A copy of a nested dict/list/tuple in which the values of credential keys are MASK and every
    string is passed through :func:`redact_text`. Keys themselves are kept."""
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if is_secret_key(str(k)) and not isinstance(v, (Mapping, list, tuple)) and v is not None and v != "":
                out[k] = MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    return redact_text(obj)


def secrets_in(obj: Any, keys: bool = True) -> dict[str, Any]:
    """Every secret of a nested config: {dotted path: value} of credential keys (unless ``keys`` is
    false), and of strings that redaction changes, such as URIs with user information."""
    found: dict[str, Any] = {}

    def walk(o: Any, path: str) -> None:
        if isinstance(o, Mapping):
            for k, v in o.items():
                p = f"{path}.{k}" if path else str(k)
                if is_secret_key(str(k)) and not isinstance(v, (Mapping, list, tuple)) and v not in (None, ""):
                    if keys:
                        found[p] = v
                else:
                    walk(v, p)
        elif isinstance(o, (list, tuple)):
            for i, v in enumerate(o):
                walk(v, f"{path}[{i}]")
        elif isinstance(o, str) and (redact_text(o) != o):
            found[path] = o

    walk(obj, "")
    return found


def secret_values(obj: Any) -> list[str]:
    """The literal secret strings in a nested config (values, URI passwords, override values)."""
    out: list[str] = []
    for v in secrets_in(obj).values():
        if not isinstance(v, str):
            continue
        parts = _userinfo_secrets(v)
        m = _SECRET_VALUE.findall(v)
        for a in _ASSIGNMENT.finditer(v):
            if is_secret_key(a.group("key")):
                parts.append(a.group("value"))
        out.extend(parts + list(m) if (parts or m) else [v])
    return [s for s in out if len(s) >= 5]


def restore(obj: Any, secrets: Mapping[str, Any]) -> Any:
    """Put the values of ``secrets`` ({dotted path: value}, from :func:`secrets_in`) back into a
    redacted nested config."""
    if not secrets:
        return obj

    def walk(o: Any, path: str) -> Any:
        if path in secrets:
            return secrets[path]
        if isinstance(o, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(o)]
        return o

    return walk(obj, "")


# Credentials of the tracking server, read by MLflow from the environment: masked wherever they show up.
TRACKING_ENV_SECRETS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH")


def remember_env_credentials() -> None:
    remember([os.environ.get(k) for k in TRACKING_ENV_SECRETS if os.environ.get(k)])


def load_env_secrets() -> dict[str, Any]:
    """The secrets the launcher handed this cell (``$JSWEEP_SECRETS``), remembered for redaction."""
    import json

    remember_env_credentials()
    raw = os.environ.get(ENV)
    if not raw:
        return {}
    try:
        secrets = json.loads(raw)
    except ValueError:
        return {}
    remember(secret_values(secrets) + [str(v) for v in secrets.values()])
    return secrets


class RedactingStream:
    """A text stream that redacts what is written to it (the launcher's console: MLflow prints
    "View run ... at: <tracking uri>" itself)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, s: str) -> int:
        self._stream.write(redact_text(s))
        return len(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
