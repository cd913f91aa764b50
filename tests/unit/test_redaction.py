"""Credential-like keys, token-shaped and remembered values are masked (jsweep.redaction; a README
promise, split from tests/integration/test_promises.py; the real CLI's side is in tests/integration/test_survive.py)."""

from __future__ import annotations

import json

import pytest

SECRET_KEYS = [
    "hf_token",
    "HF_TOKEN",
    "api_key",
    "api-key",
    "apikey",
    "openai_api_key",
    "secret",
    "client_secret",
    "password",
    "db_passwd",
    "passphrase",
    "credentials",
    "auth",
    "authorization",
    "private_key",
    "aws_access_key",
    "cookie",
    "session_key",
    "wandb.api_key",
    "+experiment.hf_token",
]


NOT_SECRET_KEYS = [
    "pad_token_id",
    "eos_token",
    "bos_token",
    "max_new_tokens",
    "train/tokens",
    "tokens_per_second",
    "train/tokens_per_second_per_gpu",  # a throughput metric, redacted in a real 4-GPU run's summary before
    "token_accuracy",
    "tokenizer",
    "tokenizer_name",
    "token_dir",
    "auth_type",
    "author",
    "authors",
    "max_toks",
    "secret_env",
    "num_tokens",
    "token_count",
    "credentials_path",
    "lr",
    "seed",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_credential_like_key_is_masked_in_structures_and_text(key):
    from jsweep.redaction import MASK, is_secret, redact, redact_text

    assert is_secret(key)
    assert redact({"section": {key: "v4lue-XYZ", "n": 3}}) == {"section": {key: MASK, "n": 3}}
    for text in (f"{key}=v4lue-XYZ lr=1e-4", f"{key}: v4lue-XYZ", f'{{"{key}": "v4lue-XYZ"}}'):
        assert "v4lue-XYZ" not in redact_text(text) and MASK in redact_text(text), text
    assert redact_text(f"{key}=v4lue-XYZ lr=1e-4").endswith(" lr=1e-4")


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_keys_about_tokens_or_places_are_kept(key):
    from jsweep.redaction import is_secret, redact, redact_text

    assert not is_secret(key, "12")
    assert redact({key: 12, "x": {key: "12"}}) == {key: 12, "x": {key: "12"}}
    assert redact_text(f"{key}=12 {key}: 12") == f"{key}=12 {key}: 12"


@pytest.mark.parametrize("value", ["hf_" + "a1B2" * 6, "sk-" + "Zz9_" * 6, "ghp_" + "x" * 24])
def test_token_shaped_values_are_masked_under_any_key(value):
    from jsweep.redaction import MASK, is_secret, redact, redact_text

    assert is_secret("note", value) and redact({"note": value}) == {"note": MASK}
    assert redact_text(f"using {value} now") == f"using {MASK} now"
    assert not is_secret("note", "hf_short")


def test_a_remembered_secret_is_masked_wherever_it_appears_later():
    import jsweep.redaction as R

    R.remember(["Rmbrd-9876-value", "abc"])  # too short values are not remembered (false positives)
    try:
        assert R.redact_text("echo Rmbrd-9876-value; x=Rmbrd-9876-value") == "echo ***; x=***"
        assert R.redact_text("abc abcdef") == "abc abcdef"
    finally:
        R.forget(["Rmbrd-9876-value"])


def test_only_the_last_segment_of_a_dotted_key_names_a_credential():
    from jsweep.redaction import is_secret_key

    assert is_secret_key("model.arch.hf_token") and is_secret_key("+experiment.api_key") and is_secret_key("~auth")
    assert not is_secret_key("section.password.lr")  # a section named like a credential: its keys stay
    assert not is_secret_key("+pad_token") and not is_secret_key("~eos_token") and not is_secret_key("++bos_token")


def test_redact_walks_lists_and_tuples_and_keeps_empty_values():
    from jsweep.redaction import MASK, redact

    cfg = {
        "a": [{"hf_token": "tok-12345", "n": 1}, "http://u:pw@h/x"],
        "b": ("plain", {"secret": "s-99999"}),
        "c": {"hf_token": "", "api_key": None},
    }
    assert redact(cfg) == {
        "a": [{"hf_token": MASK, "n": 1}, "http://***@h/x"],
        "b": ("plain", {"secret": MASK}),
        "c": {"hf_token": "", "api_key": None},
    }
    assert isinstance(redact(cfg)["b"], tuple)


def test_secrets_in_names_every_secret_by_its_path():
    from jsweep.redaction import secrets_in

    cfg = {
        "a": {"hf_token": "tok-12345", "pad_token_id": 1, "empty_token": "", "none_token": None},
        "l": ["plain", "http://u:pw@h"],
        "auth": {"user": "x"},
        "n": 3,
    }
    assert secrets_in(cfg) == {"a.hf_token": "tok-12345", "l[1]": "http://u:pw@h"}
    assert secrets_in(cfg, keys=False) == {"l[1]": "http://u:pw@h"}
    assert secrets_in({"uri": "http://u:pw@h"}) == {"uri": "http://u:pw@h"}


def test_remembered_values_from_five_characters_longest_first():
    import jsweep.redaction as R

    R.remember(["abcde", "abcd", "Long-secret", "Long-secret-and-more"])
    try:
        assert R.redact_text("abcde abcd") == "*** abcd"
        assert R.redact_text("x=Long-secret-and-more!") == "x=***!"  # the longer one first, whole
    finally:
        for v in ("abcde", "Long-secret", "Long-secret-and-more"):
            R.forget([v])


def test_remembered_values_are_masked_longest_first_not_in_name_order():
    import jsweep.redaction as R

    R.remember(["zz-secret1", "Azz-secret1"])  # the shorter one sorts after the longer one
    try:
        assert R.redact_text("k Azz-secret1 zz-secret1") == "k *** ***"
    finally:
        R.forget({"zz-secret1", "Azz-secret1"})


def test_restore_puts_secrets_back_at_their_paths_in_lists_too():
    from jsweep.redaction import redact, restore, secrets_in

    cfg = {"uris": ["http://u:pw1@h", "plain"], "m": {"hf_token": "tok-12345", "x": [1, {"api_key": "k-99999"}]}}
    assert restore(redact(cfg), secrets_in(cfg)) == cfg
    assert restore(redact(cfg), {}) == redact(cfg)


def test_secrets_handed_to_a_cell_are_remembered_and_the_console_is_redacted(monkeypatch):
    import io

    import jsweep.redaction as R

    monkeypatch.setenv(R.ENV, json.dumps({"tracking.uri": "http://user:PWenv777@host", "x.hf_token": "TOKenv8888"}))
    try:
        assert R.load_env_secrets() == {"tracking.uri": "http://user:PWenv777@host", "x.hf_token": "TOKenv8888"}
        assert R.redact_text("a PWenv777 b TOKenv8888") == "a *** b ***"
        sink = io.StringIO()
        stream = R.RedactingStream(sink)
        assert stream.write("View run at http://user:PWenv777@host/#/1\n") == len(
            "View run at http://user:PWenv777@host/#/1\n"
        )
        assert sink.getvalue() == "View run at ***/#/1\n" and stream.getvalue() == sink.getvalue()
        assert R.secret_values({"u": "http://user:PWenv777@host", "o": "+x.hf_token=TOKenv8888 lr=1"}) == [
            "user:PWenv777",
            "PWenv777",
            "TOKenv8888",
        ]
    finally:
        R.forget({"user:PWenv777", "PWenv777", "TOKenv8888", "http://user:PWenv777@host"})
    monkeypatch.setenv(R.ENV, "not json")
    assert R.load_env_secrets() == {}
    monkeypatch.delenv(R.ENV)
    assert R.load_env_secrets() == {}
