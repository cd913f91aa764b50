"""An LLM judge: any OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

Configured by the ``judge`` config group (conf/judge/*.yaml): ``base_url``, ``model`` and
``api_key_env``, the NAME of the environment variable holding the key. The key itself is read
from the environment when a request is made; it is never logged, written to a file or part of a
cell id (the judge config is not part of the cell identity at all: changing the judge re-judges,
it never re-trains).

- :class:`Judge` sends one prompt, retrying rate limits (429), server errors (5xx), 408/409,
  timeouts and refused connections with exponential back-off; after ``max_retries`` it raises
  :class:`JudgeUnavailable`, and the caller keeps what it has (answers are saved first).
- :class:`JudgmentCache` keeps every reply in ``<cell_dir>/judgments.jsonl``, keyed by a digest of
  (judge identity, prompt text): a re-run, a resumed sweep or ``jsweep judge`` pays for no
  judgment twice. Each reply is appended as soon as it arrives, so a judge that stops mid-way
  loses nothing already judged.
- :func:`judge_all` judges a list of prompts concurrently through the cache.

Importing this module imports neither torch nor openai.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsweep.errors import ConfigError, JsweepError

if TYPE_CHECKING:
    from openai import OpenAI

# Keys of the judge config that change what a judgment is (its identity, logged with every score).
IDENTITY_KEYS = ("base_url", "model", "temperature", "max_tokens", "seed", "extra_body")
DEFAULTS: dict[str, Any] = {
    "name": "local",
    "base_url": "http://127.0.0.1:8000/v1",
    "model": "judge",
    "api_key_env": None,
    "temperature": 0.0,
    "max_tokens": 512,
    "seed": None,
    "extra_body": None,
    "timeout": 60.0,
    "max_retries": 6,
    "backoff": 1.0,
    "backoff_max": 60.0,
    "concurrency": 4,
    "prompt": "elyza",
    "defer": False,
    "pairwise": None,
}


class JudgeUnavailable(JsweepError):
    """The judge could not be reached (or kept failing) after every retry."""


class JudgeRejected(JudgeUnavailable):
    """The judge refused one request (HTTP 400/413/422: e.g. a prompt over its context); the others go on."""


def options(judge: Any) -> dict[str, Any]:
    """The judge config as a plain dict with defaults filled in (``judge`` is a spec or a dict)."""
    if judge is None:
        return dict(DEFAULTS)
    if hasattr(judge, "__dataclass_fields__"):
        import dataclasses

        judge = dataclasses.asdict(judge)
    return {**DEFAULTS, **dict(judge)}


def identity(opts: dict[str, Any]) -> dict[str, Any]:
    """What identifies the judge's verdicts: endpoint, model and sampling parameters (never the key)."""
    return {k: opts.get(k) for k in IDENTITY_KEYS}


def check(opts: dict[str, Any], *, need_key: bool = True) -> list[str]:
    """Pre-flight problems with a judge config (no request is made)."""
    problems = []
    unknown = sorted(set(opts) - set(DEFAULTS))
    if unknown:
        problems.append(f"unknown key 'judge.{unknown[0]}' (valid keys: {', '.join(sorted(DEFAULTS))})")
    if not str(opts.get("base_url") or "").startswith(("http://", "https://")):
        problems.append(f"judge.base_url must be an http(s) URL, got {opts.get('base_url')!r}")
    if not opts.get("model"):
        problems.append("judge.model is empty")
    env = opts.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not env.replace("_", "").isalnum()):
        problems.append(
            "judge.api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"
        )
    elif env and need_key and not opts.get("defer") and not os.environ.get(env):
        problems.append(
            f"judge.api_key_env: environment variable {env} is not set (set it, or judge.defer=true "
            f"to generate answers now and run `jsweep judge` later)"
        )
    from jsweep.eval.judge_prompts import PROMPTS

    if opts.get("prompt") not in PROMPTS:
        problems.append(f"unknown judge.prompt '{opts.get('prompt')}' (choose from: {', '.join(sorted(PROMPTS))})")
    for key in ("max_retries", "concurrency"):
        if not isinstance(opts.get(key), int) or opts[key] < (0 if key == "max_retries" else 1):
            problems.append(
                f"judge.{key} must be a {'non-negative' if key == 'max_retries' else 'positive'} "
                f"integer, got {opts.get(key)!r}"
            )
    return problems


class Judge:
    """One OpenAI-compatible endpoint. ``complete(prompt)`` returns the reply text."""

    def __init__(self, opts: dict[str, Any], sleep: Callable[[float], None] = time.sleep):
        self.opts = options(opts)
        self.identity = identity(self.opts)
        self.sleep = sleep
        self.requests = 0
        self._client: OpenAI | None = None  # made on first use (openai is imported then)
        self._lock = threading.Lock()

    def _api_key(self) -> str:
        env = self.opts.get("api_key_env")
        if not env:
            return "EMPTY"  # local servers (vLLM, transformers serve) take any key
        key = os.environ.get(env)
        if not key:
            raise ConfigError(f"judge.api_key_env: environment variable {env} is not set")
        return key

    @property
    def client(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                # Retries are ours (logged, with back-off up to backoff_max), not the client's.
                self._client = OpenAI(
                    base_url=self.opts["base_url"],
                    api_key=self._api_key(),
                    max_retries=0,
                    timeout=float(self.opts["timeout"]),
                )
            return self._client

    def complete(self, prompt: str) -> str:
        import openai

        retryable = (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
        )
        kwargs: dict[str, Any] = {
            "model": self.opts["model"],
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.opts["temperature"],
            "max_tokens": self.opts["max_tokens"],
        }
        if self.opts.get("seed") is not None:
            kwargs["seed"] = self.opts["seed"]
        if self.opts.get("extra_body"):  # server-specific parameters: logit_bias, vLLM's guided_choice, ...
            kwargs["extra_body"] = dict(self.opts["extra_body"])
        attempts = int(self.opts["max_retries"]) + 1
        delay = float(self.opts["backoff"])
        for attempt in range(1, attempts + 1):
            try:
                with self._lock:
                    self.requests += 1
                resp = self.client.chat.completions.create(**kwargs)
                return resp.choices[0].message.content or ""
            except openai.APIStatusError as exc:
                if exc.status_code in (400, 413, 422):
                    raise JudgeRejected(
                        f"judge {self.opts['model']} rejected a request: HTTP {exc.status_code} ({_short(exc)})"
                    ) from None
                if exc.status_code not in (408, 409, 429) and exc.status_code < 500:  # as the openai client retries
                    raise JudgeUnavailable(
                        f"judge {self.opts['model']} at {self.opts['base_url']} refused the "
                        f"request: HTTP {exc.status_code} ({_short(exc)})"
                    ) from None
                last = f"HTTP {exc.status_code}"
            except retryable as exc:
                last = type(exc).__name__
            if attempt < attempts:
                self.sleep(min(delay, float(self.opts["backoff_max"])))
                delay *= 2
        raise JudgeUnavailable(
            f"judge {self.opts['model']} at {self.opts['base_url']} unavailable after "
            f"{attempts} attempt(s) (last: {last})"
        )


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class JudgmentCache:
    """Replies by (judge identity, prompt) in a JSON-lines file; appended one reply at a time.

    A cell run again with ``--rerun`` keeps its earlier directory as ``<id>.replaced-<time>``: the
    judgments there are read too (a reply found there is copied into this file when used), so a
    re-run cell whose answers did not change pays for no judgment again."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}
        self.earlier: dict[str, dict[str, Any]] = {}
        cell_dir = self.path.parent
        for old in sorted(cell_dir.parent.glob(f"{cell_dir.name}.replaced-*/{self.path.name}")):
            self._read(old, self.earlier)
        self._read(self.path, self.entries)

    @staticmethod
    def _read(path: Path, into: dict[str, dict[str, Any]]) -> None:
        if not path.exists():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill mid-write
            if isinstance(row, dict) and "key" in row and "reply" in row:
                into[row["key"]] = row

    @staticmethod
    def key(judge_identity: dict[str, Any], prompt: str) -> str:
        return hashlib.sha256((json.dumps(judge_identity, sort_keys=True) + "\0" + prompt).encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        row = self.entries.get(key)
        if row is None and key in self.earlier:  # from a replaced directory: keep it here from now on
            row = self.earlier[key]
            self.put(key, row["reply"], **{k: v for k, v in row.items() if k not in ("key", "reply", "time")})
        return None if row is None else row["reply"]

    def put(self, key: str, reply: str, **meta: Any) -> None:
        row = {"key": key, "reply": reply, "time": time.time(), **meta}
        with self._lock:
            self.entries[key] = row
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()


@dataclass
class Outcome:
    replies: list[str | None]  # None: not judged (the judge was unavailable)
    requested: int = 0  # requests that reached the judge this time
    cached: int = 0  # replies taken from the cache
    error: str | None = None  # why some are missing
    pending: int = field(default=0)


def judge_all(
    judge: Judge,
    prompts: Sequence[str],
    cache: JudgmentCache,
    *,
    prompt_digest: str = "",
    label: str = "judge",
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Judge ``prompts`` through ``cache``; stop cleanly (keeping every reply) when the judge is down."""
    keys = [cache.key(judge.identity, p) for p in prompts]
    replies: list[str | None] = [cache.get(k) for k in keys]
    todo = [i for i, r in enumerate(replies) if r is None]
    out = Outcome(replies, cached=len(prompts) - len(todo))
    if not todo:
        return out
    stop = threading.Event()
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        if stop.is_set():
            return
        try:
            reply = judge.complete(prompts[i])
        except JudgeRejected as exc:  # this prompt only: left pending, the others go on
            errors.append(str(exc))
            return
        except (JudgeUnavailable, ConfigError) as exc:
            stop.set()
            errors.append(str(exc))
            return
        cache.put(keys[i], reply, judge=judge.identity, prompt_digest=prompt_digest)
        replies[i] = reply
        with lock:
            done[0] += 1
            if progress and (done[0] % 20 == 0 or done[0] == len(todo)):
                progress(f"{label}: {done[0]}/{len(todo)} judged ({out.cached} cached)")

    before = judge.requests
    with ThreadPoolExecutor(max_workers=max(1, int(judge.opts["concurrency"]))) as pool:
        list(pool.map(one, todo))
    out.requested = judge.requests - before
    out.pending = sum(r is None for r in replies)
    out.error = errors[0] if errors else None
    return out
