"""Rendering strings nobody vouches for (file names, comm, cmdline) so they
cannot forge a line or a field wherever users read them.

`escape` is lossless and reversible: a byte that is not printable UTF-8 becomes
`\\xNN`, a non-printing code point `\\uNNNN`, a backslash `\\\\`. The result is
valid UTF-8 without control, format or line-separator characters.
"""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any

_UNPRINTABLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _printable(ch: str) -> bool:
    return ch == " " or (ch.isprintable() and unicodedata.category(ch) not in _UNPRINTABLE_CATEGORIES)


# Printable ASCII but the backslash: what most names are, and what escape returns unchanged.
_PLAIN = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")


def escape(raw: bytes | str) -> str:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if _PLAIN.fullmatch(raw):
        return raw.decode("ascii")
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        if ch == "\\":
            out.append("\\\\")
        elif "\udc80" <= ch <= "\udcff":        # a byte that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xdc00:02x}")
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) < 0x80:                     # ASCII control: one byte
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xffff else f"\\U{ord(ch):08x}")
    return "".join(out)


# A process's name (comm, 15 bytes at most) is in every record of its events: escaped once.
escape_name = functools.lru_cache(maxsize=4096)(escape)


def unescape(text: str) -> bytes:
    """The bytes `escape` was given."""
    out, i = bytearray(), 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        kind = text[i + 1]
        if kind == "\\":
            out += b"\\"
            i += 2
        elif kind == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            width = 4 if kind == "u" else 8
            out += chr(int(text[i + 2:i + 2 + width], 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
    return bytes(out)


def displayable(text: str) -> str:
    """For output of text read back from the journal, where anyone may have written it:
    control characters escaped, everything else as it is."""
    return "".join(ch if _printable(ch) or ch == "\\" else escape(ch) for ch in text)


def lineage_list(text: str) -> list[dict[str, Any]] | None:
    """LSMGUARD_LINEAGE_JSON as the list of ancestors it is; None for anything else, which a
    record anyone wrote may hold (not JSON, JSON nested too deep to read, another type)."""
    try:
        lineage = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return lineage if isinstance(lineage, list) and all(isinstance(a, dict) for a in lineage) else None
