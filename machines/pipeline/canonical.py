"""Canonical JSON bytes for what a run persists, and the secrets policy that guards them.

Equal JSON values give equal bytes: keys sorted, no whitespace, UTF-8, the
same text `adapters.runtime.store.canonical_json` writes (the kernel layer may
not import the shell, so this small pure copy of the rule lives here, and
``tests/machines/test_pipeline.py`` keeps the two equal). Floats are refused
because their text is not canonical across languages; so is anything that is
not plain JSON data (sets, objects, non-string keys, strings that are not
valid Unicode).

Nothing that looks like a secret may be persisted either: a key or a string
containing one of a few high-signal markers (``password``, ``private_key``,
``api_key``, ``access_token``, ...), or a string of 12 to 24 lower-case words
(the shape of a wallet's recovery phrase). The list is deliberately short to
avoid false positives; it is the source's policy, in our words.

>>> canonical_bytes({"b": [1, 2], "a": None})
b'{"a":null,"b":[1,2]}'
>>> json_problem({"rate": 0.5}), json_problem({"db_password": "x"})
('float', 'secret')
"""

from __future__ import annotations

import json
from typing import Any, Literal

__all__ = ["SECRET_MARKERS", "Problem", "canonical_bytes", "contains_secret", "json_problem"]

SECRET_MARKERS = (
    "password", "passphrase", "mnemonic", "private_key", "privatekey",
    "seed phrase", "seed_phrase", "seedphrase", "api_key", "apikey", "x-api-key",
    "access_key", "accesskey", "secret_key", "secretkey", "access_token",
    "refresh_token", "id_token", "authorization", "bearer ",
)
"""Substrings (matched case-insensitively) that mark a key or a string as secret."""

Problem = Literal["secret", "float", "not_json"]


def contains_secret(text: str) -> bool:
    """Whether ``text`` carries a secret marker or looks like a recovery phrase."""
    lower = text.lower()
    if any(marker in lower for marker in SECRET_MARKERS):
        return True
    words = text.split()
    return 12 <= len(words) <= 24 and all(w.isascii() and w.isalpha() and w.islower() for w in words)


def _secret(value: Any) -> bool:
    if isinstance(value, str):
        return contains_secret(value)
    if isinstance(value, (list, tuple)):
        return any(_secret(v) for v in value)
    if isinstance(value, dict):
        return any(isinstance(k, str) and contains_secret(k) for k in value) or any(_secret(v) for v in value.values())
    return False


def _shape(value: Any) -> Problem | None:
    # Iterative, so a deeply nested value is judged rather than blowing the stack.
    todo = [value]
    while todo:
        v = todo.pop()
        if v is None or isinstance(v, (bool, int)):
            continue
        if isinstance(v, float):
            return "float"
        if isinstance(v, str):
            try:
                v.encode()
            except UnicodeEncodeError:
                return "not_json"
        elif isinstance(v, (list, tuple)):
            todo.extend(v)
        elif isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                return "not_json"
            todo.extend(v.keys())
            todo.extend(v.values())
        else:
            return "not_json"
    return None


def json_problem(value: Any) -> Problem | None:
    """Why ``value`` may not be persisted, or None: secrets are looked for first, as the source does."""
    try:
        if _secret(value):
            return "secret"
    except RecursionError:
        return "not_json"
    return _shape(value)


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``; `ValueError` naming the problem when it has one."""
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(f"not canonical JSON: {problem}")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (RecursionError, ValueError) as exc:
        raise ValueError(f"not canonical JSON: {exc}") from None
    return text.encode()
