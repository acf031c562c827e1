"""What a workshop room hands out and takes in: room codes, instructor keys (only their hash is kept), participant
tokens, and nicknames cleaned to plain text.

- A room code is 10 characters from an alphabet without look-alikes (no 0/O, 1/I/L, U): 30**10, about 6 * 10**14
  codes, so guessing one room's code by trying codes is hopeless; input is read case-insensitively, spaces and
  dashes ignored.
- An instructor key is 192 random bits from :mod:`secrets` (32 URL-safe characters); the store keeps its SHA-256
  (a random key needs no slow hash) and compares in constant time.
- A participant token is 128 random bits: the participant's identity in the room, never shown to others.
- A nickname is text: control, format and surrogate characters removed, whitespace collapsed, cut at 40
  characters. HTML or Markdown in it stays as the characters typed; pages show it as text.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
KEY_BYTES = 24  # 192 bits
NICKNAME_MAX = 40
_CODE_RE = re.compile(f"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
_DROPPED = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # control, format, surrogate, private, unassigned, line breaks
_NO_ROOM_HASH = hashlib.sha256(b"no room").hexdigest()


def new_code() -> str:
    """A fresh room code (:data:`CODE_LENGTH` characters of :data:`CODE_ALPHABET`)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code) -> str | None:
    """A typed or linked room code in its stored form, or None when it cannot be any room's code."""
    if not isinstance(code, str) or len(code) > 4 * CODE_LENGTH:
        return None
    code = re.sub(r"[\s-]", "", code).upper()
    return code if _CODE_RE.match(code) else None


def new_key() -> str:
    """A fresh instructor key: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """The stored form of an instructor key (hex SHA-256)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key, stored_hash: str | None) -> bool:
    """Whether ``key`` is the key whose hash is ``stored_hash``, compared in constant time (an unknown room
    compares against a dummy hash, so it takes as long as a wrong key)."""
    if not isinstance(key, str) or not key or len(key) > 256:
        key = ""
    match = hmac.compare_digest(hash_key(key), stored_hash or _NO_ROOM_HASH)
    return bool(key) and stored_hash is not None and match


def new_participant() -> str:
    """A fresh participant token (128 random bits)."""
    return secrets.token_urlsafe(16)


def clean_nickname(text) -> tuple[str, str | None]:
    """A nickname in its stored form, and a one-line message when it had to be changed.

    Control, format and surrogate characters are removed, runs of whitespace become one space, and the result is
    cut at :data:`NICKNAME_MAX` characters. Raises ValueError (one sentence) when nothing visible is left.
    """
    if not isinstance(text, str):
        raise ValueError("A nickname must be text.")
    raw = text[: 64 * NICKNAME_MAX]
    kept = "".join(c for c in unicodedata.normalize("NFC", raw) if unicodedata.category(c) not in _DROPPED
                   or c in "\t\n\r")
    dropped = len(kept) < len(unicodedata.normalize("NFC", raw))
    collapsed = " ".join(kept.split())
    if not collapsed:
        raise ValueError("A nickname needs at least one visible character.")
    cut = len(collapsed) > NICKNAME_MAX or len(text) > len(raw)
    name = collapsed[:NICKNAME_MAX].rstrip()
    changes = []
    if dropped:
        changes.append("control characters removed")
    if collapsed != kept:
        changes.append("spaces tidied")
    if cut:
        changes.append(f"cut to {NICKNAME_MAX} characters")
    return name, ("Your nickname was changed: " + ", ".join(changes) + ".") if changes else None
