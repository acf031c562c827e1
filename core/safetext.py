"""Text from elsewhere (file, class and link values) made safe to show: control and format characters (ESC, CR,
NUL, newlines, bidi overrides…) and lone surrogates (an undecodable file name) as ``\\x1b``-style escapes, so a
name can neither colour nor rewrite a terminal line, nor break a one-line message."""
from __future__ import annotations

import unicodedata

_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control and format characters, lone surrogates, line breaks


def printable(text) -> str:
    """``text`` with every unprintable character escaped (for the CLI's text output: JSON escapes them itself)."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNPRINTABLE else c
                   for c in str(text))
