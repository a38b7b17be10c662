"""Refuse secrets written into a config file: the file is shared, reviewed and kept in git.

Two rules run over the plain data the loader built (every key and value, at any depth):

- a value under a key whose name says credential — the key's last word is token, password, secret,
  passphrase, authorization, bearer, credential(s), or its last two are api key, private key, access
  key, secret key, session id (camelCase and dashes count as word breaks: ``clientSecret``,
  ``hubspot-token``, ``HUBSPOT_ACCESS_TOKEN``); `token_count` or `password_reset` name other things;
- a value (or key) shaped like a credential wherever it sits: a HubSpot private app token
  (``pat-na1-<uuid>``), a Salesforce session id (``00D…!…``) or refresh token (``5Aep8…``), a JWT,
  a ``Bearer …`` header, a URL with a password in it, a PEM private key, a few widely used API key
  formats, and a long random-looking run of mixed-case letters and digits.

The places where the config names where a secret is — `secret_blocks` (variable -> block name),
`secret_block`, `env`, `env_prefix` — hold names, so the key rule skips them; a token pasted there
in place of a name is still caught by its shape. A found secret is reported at its file and line
without its value, with the way out: an environment variable or a Prefect Secret block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from okr_mapping.errors import Issue, KeyPath
from okr_mapping.findings import Finding

if TYPE_CHECKING:
    from okr_mapping.loader import SourceMap

HINT = "put it in an environment variable or a Prefect Secret block (see docs/scheduling.md)"

# The key's last word, or last two words, that make it name a credential.
_SECRET_WORDS = frozenset({"token", "password", "passwd", "pwd", "passphrase", "secret", "apikey", "hapikey",
                           "authorization", "bearer", "credential", "credentials", "sessionid"})
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"),
                           ("signing", "key"), ("session", "id")})
# Keys whose values (or, for secret_blocks, whose keys and values) are names of where a secret lives.
_NAME_KEYS = frozenset({"secret_block", "env", "env_prefix"})
_NAME_MAPS = frozenset({"secret_blocks"})

_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a HubSpot private app token",
     re.compile(r"\bpat-[a-z]{2,3}\d?-[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}\b", re.IGNORECASE)),
    ("a Salesforce session id or access token",
     re.compile(r"\b00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?![A-Za-z0-9._]{16,}")),
    ("a Salesforce refresh token", re.compile(r"\b5Aep8[A-Za-z0-9._]{30,}")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    ("an Authorization header", re.compile(r"\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{12,}", re.IGNORECASE)),
    ("a URL with a password in it", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@", re.IGNORECASE)),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an API key", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
                              r"|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|sk_live_[A-Za-z0-9]{20,})")),
)
_RANDOM_MIN = 24  # a run this long of mixed-case letters and digits, spread out like a random one
_RUN = re.compile(r"[A-Za-z0-9+_~-]+")
_LINK_PATH = re.compile(r"\bhttps?://[^\s?#]*", re.IGNORECASE)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [word for word in re.split(r"[\s_.\-]+", spaced.lower()) if word]


def secret_key(key: str) -> bool:
    """Whether a key's name says its value is a credential (`hubspot_token`, `clientSecret`, ...)."""
    words = _words(key)
    return bool(words) and (words[-1] in _SECRET_WORDS or tuple(words[-2:]) in _SECRET_PAIRS)


def _class(char: str) -> int:
    return 0 if char.islower() else 1 if char.isupper() else 2


def _random_looking(run: str) -> bool:
    """A long run whose letters and digits switch case or kind as often as random ones do: about 6 in
    10 characters in a random token, about 3 in 10 in a CamelCase or Snake_Case name."""
    chars = [char for char in run if char.isascii() and char.isalnum()]
    if len(chars) < _RANDOM_MIN or not any(char.isdigit() for char in chars):
        return False
    switches = sum(_class(a) != _class(b) for a, b in zip(chars, chars[1:], strict=False))
    return switches / (len(chars) - 1) >= 0.45


def secret_shape(text: str) -> str | None:
    """What a text looks like when it holds a credential (None when it does not)."""
    for kind, pattern in _SHAPES:
        if pattern.search(text):
            return kind
    # Random-looking ids in a link's path (a shared document's) are addresses; a query string is still read.
    if any(_random_looking(run) for run in _RUN.findall(_LINK_PATH.sub(" ", text))):
        return "a random-looking token"
    return None


def find_secrets(data: Any, path: KeyPath = (), names_only: bool = False) -> Iterator[Finding]:
    """A finding (on the value, or on_key for a key shaped like a token: its path then ends with the
    key, which the loader places but does not show) for every secret in `data`."""
    if isinstance(data, dict):
        for key, value in data.items():
            key_text = str(key)
            child = (*path, key_text)
            kind = secret_shape(key_text)
            if kind is not None:
                yield _finding(child, kind, on_key=True)
                continue
            name_here = names_only or key_text in _NAME_MAPS or key_text in _NAME_KEYS
            if not name_here and secret_key(key_text) and _scalar(value):
                yield _finding(child, f"a credential (under '{key_text}')")
                continue
            yield from find_secrets(value, child, names_only or key_text in _NAME_MAPS)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_secrets(item, (*path, index), names_only)
    elif isinstance(data, str):
        kind = secret_shape(data)
        if kind is not None:
            yield _finding(path, kind)


def secret_values(data: Any, findings: list[Finding]) -> list[str]:
    """The texts of the found secrets (values, or keys for key findings): no other message may show them."""
    texts = []
    for finding in findings:
        if finding.on_key:
            texts.append(str(finding.path[-1]))
            continue
        value = data
        for part in finding.path:
            value = value[part]
        texts.append(str(value))
    return [text for text in texts if text]


def _scalar(value: Any) -> bool:
    """A value that could be a secret: non-empty text or a number (not a flag, not a group of settings)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int | float)


def _finding(path: KeyPath, kind: str, on_key: bool = False) -> Finding:
    return Finding("error", path, f"this looks like {kind}; a config file must not hold secrets (it is shared "
                   f"and kept in git): {HINT}", on_key=on_key)


def secret_issues(data: Any, source_map: SourceMap) -> tuple[list[Issue], list[str]]:
    """An error at its file and line for each secret in a file's data, and the secret texts, which no
    other message may show (the loader's hook)."""
    found = list(find_secrets(data))
    issues = [source_map.issue(item.level, item.path, item.message, on_key=item.on_key) for item in found]
    # A key that is itself the secret is pointed at, not named: the issue's path stops above it.
    issues = [replace(issue, path=issue.path[:-1]) if item.on_key else issue
              for issue, item in zip(issues, found, strict=True)]
    return issues, secret_values(data, found)


def without_secrets(issues: list[Issue], secrets: list[str]) -> list[Issue]:
    """`issues` less those whose text shows one of `secrets` (a schema message quoting the value, say)."""
    return [issue for issue in issues if not any(secret in issue.render() for secret in secrets)]
