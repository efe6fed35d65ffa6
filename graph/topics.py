"""Which parts of a cluster an operator's question asks about, read word by word.

Why words and not substrings: "default" contains "fault" and "screenshot" contains "hot"; a
substring test sent such questions to the health checks and the thermal tools. Here a question
is split into words, and a vocabulary entry matches a whole word (``"hot"``), a word's start
(``"throttl*"`` matches throttled and throttling) or a run of words (``"fell off"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gpudoc.tools.capabilities import Topic

_WORD = re.compile(r"[a-z0-9]+")

VOCABULARY: dict[Topic, tuple[str, ...]] = {
    "overview": ("cluster", "status", "overview"),
    "usage": ("util*", "usage", "busy", "idle", "load", "memory", "power", "watt*", "capacity", "free",
              "allocat*", "clock*"),
    "thermal": ("hot", "hotter", "hottest", "temp", "temps", "temperature*", "thermal*", "throttl*", "cooling",
                "overheat*", "heat*", "warm*"),
    "health": ("rma", "health*", "unhealthy", "fault*", "faulty", "xid*", "ecc", "broken", "wrong", "replace*",
               "nvlink*", "pcie", "error*", "fail*", "fell off", "problem*", "issue*", "attention", "degraded",
               "remap*", "dead", "down"),
    "jobs": ("job", "jobs", "pending", "queue*", "slurm", "scheduler", "partition*", "drain*"),
    "alerts": ("alert*", "firing", "fired", "alarm*"),
}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _matches(entry: str, tokens: list[str]) -> bool:
    parts = entry.split()
    if len(parts) > 1:
        return any(tokens[i : i + len(parts)] == parts for i in range(len(tokens) - len(parts) + 1))
    if entry.endswith("*"):
        return any(token.startswith(entry[:-1]) for token in tokens)
    return entry in tokens


def topics_in(question: str, vocabulary: dict[Topic, tuple[str, ...]] = VOCABULARY) -> list[Topic]:
    """The topics a question asks about, in vocabulary order."""
    tokens = words(question)
    return [topic for topic, entries in vocabulary.items() if any(_matches(entry, tokens) for entry in entries)]


def asks_about(question: str, topic: Topic) -> bool:
    return topic in topics_in(question)


def any_of(topics: Iterable[Topic], wanted: Iterable[Topic]) -> bool:
    return bool(set(topics) & set(wanted))
