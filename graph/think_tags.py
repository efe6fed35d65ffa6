"""Separate inline ``<think>…</think>`` reasoning from the answer text.

Why: vLLM with ``--reasoning-parser`` returns the thinking in a field of its own, but a server
without a reasoning parser (vLLM without the flag, some llama.cpp and Ollama set-ups) leaves it
in ``content``. Shown as the answer it would bury the answer, and its scratch numbers would be
counted as ungrounded. ``ThinkSplitter`` routes it to the reasoning channel as it streams.

Two shapes occur: the model writes ``<think>…</think>answer``, or the chat template already
opened the tag in the prompt and the model writes ``…</think>answer``. The first is split while
streaming. The second can only be recognised once ``</think>`` arrives; ``split_think_tags``
handles it for whole messages, and a stream reports it through ``orphan_close_seen``.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is the start of ``tag`` (a tag split across chunks)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Streaming splitter: ``feed(chunk) -> (reasoning, answer)``, then ``finish()`` for the rest."""

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> after_think -> answer, or start -> answer
        self._held = ""
        self.orphan_close_seen = False

    def feed(self, text: str) -> tuple[str, str]:
        held, self._held = self._held + text, ""
        if self._state == "start":
            stripped = held.lstrip()
            if stripped.startswith(OPEN):
                self._state = "thinking"
                held = stripped[len(OPEN):]
            elif OPEN.startswith(stripped):
                self._held = held  # still could become "<think>"
                return "", ""
            else:
                self._state = "answer"
        if self._state == "thinking":
            end = held.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(held, CLOSE)
                self._held = held[len(held) - keep:] if keep else ""
                return held[: len(held) - keep], ""
            self._state = "after_think"
            reasoning, held = held[:end], held[end + len(CLOSE):]
            return reasoning, self._answer_start(held)
        if self._state == "after_think":
            return "", self._answer_start(held)
        if CLOSE in held:
            self.orphan_close_seen = True
        return "", held

    def _answer_start(self, text: str) -> str:
        """The answer begins at its first visible character (the blank lines after the tag go)."""
        text = text.lstrip()
        if text:
            self._state = "answer"
        return text

    def finish(self) -> tuple[str, str]:
        """Whatever is still held back: unfinished thinking stays reasoning, anything else is answer."""
        held, self._held = self._held, ""
        if self._state == "thinking":
            return held, ""
        return "", held


def split_think_tags(content: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a whole message, for both shapes described above."""
    splitter = ThinkSplitter()
    reasoning, answer = splitter.feed(content)
    more_reasoning, rest = splitter.finish()
    reasoning, answer = reasoning + more_reasoning, answer + rest
    if splitter.orphan_close_seen and OPEN not in content:
        before, _, after = answer.partition(CLOSE)
        return (reasoning + before).strip(), after.lstrip()
    return reasoning.strip(), answer
