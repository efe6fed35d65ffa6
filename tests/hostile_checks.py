"""What "cluster text stayed data" means, as checks: shared by the hostile-text tests of every path."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Iterator

#: a markdown link or image target, an image, an HTML tag or autolink, a URL a renderer would link
MARKUP = {
    "markdown link target": re.compile(r"\]\s*\("),
    "markdown image": re.compile(r"!\["),
    "HTML tag": re.compile(r"<\s*/?\s*[A-Za-z!?]"),
    "URL": re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://"),
}
#: a line that starts with a role, as an injected instruction would (after list or quote markers)
ROLE_LINE = re.compile(r"(?mi)^[\s>*#|\-]*(?:SYSTEM|ASSISTANT|USER|DEVELOPER)\b[^:\n]{0,20}:")
#: what the longest hostile string is made of: it must arrive cut, never whole
LONG_RUN = "A" * 200


def control_characters(text: str, *, allowed: str = "") -> list[str]:
    """Control, format (bidi, zero-width), surrogate and unassigned characters, as code points."""
    return [f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch)[0] == "C" and ch not in allowed]


def unsafe_spots(text: str, *, multiline: bool) -> list[str]:
    """Everything in ``text`` that hostile cluster text must not produce; empty when clean.

    ``multiline``: an answer (markdown with lines of its own) rather than one value.
    """
    problems = [f"{name}: {match.group(0)!r}" for name, pattern in MARKUP.items()
                for match in pattern.finditer(text)]
    problems += [f"control character {code}" for code in control_characters(text, allowed="\n" if multiline else "")]
    problems += [f"line led by a role: {match.group(0)!r}" for match in ROLE_LINE.finditer(text)]
    if LONG_RUN in text:
        problems.append("a hostile string arrived uncut")
    return problems


def strings_of(value: Any) -> Iterator[str]:
    """Every string (keys included) of a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)


def unsafe_in_json(text: str) -> list[str]:
    """``unsafe_spots`` of every string of a JSON document (a tool result): each must be one line."""
    return [f"{value[:60]!r}: {problem}" for value in strings_of(json.loads(text))
            for problem in unsafe_spots(value, multiline=False)]
