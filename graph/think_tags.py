"""Separate inline ``<think>…</think>`` reasoning from the answer text.

Why: vLLM with ``--reasoning-parser`` returns the thinking in a field of its own, but a server
without a reasoning parser (vLLM without the flag, some llama.cpp and Ollama set-ups) leaves it
in ``content``. Shown as the answer it would bury the answer, and its scratch numbers would be
counted as ungrounded. ``ThinkSplitter`` routes it to the reasoning channel as it streams.

Two shapes occur: the model writes ``<think>…</think>answer``, or the chat template already
opened the tag in the prompt and the model writes ``…</think>answer``. The first is split while
streaming. The second can only be recognised once ``</think>`` arrives: a stream that may have
this shape starts ``undecided`` and holds its text back until the tag arrives (it was thinking),
the server's reasoning field speaks (the server parses thinking itself) or the stream ends (it
was the answer), so that no thinking is ever streamed as answer text. ``split_think_tags``
handles both shapes for whole messages.
"""


from __future__ import annotations

from typing import Literal

#: how a stream may begin: ``plain`` (``<think>`` or the answer), ``undecided`` (the chat template
#: may have opened the tag: hold the text until it is clear) or ``thinking`` (the template opens it)
StartMode = Literal["plain", "undecided", "thinking"]

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

    def __init__(self, start: StartMode = "plain") -> None:
        # start -> thinking -> after_think -> answer, or start -> answer (or -> undecided -> ...)
        self._state = "thinking" if start == "thinking" else "start"
        self._undecided = start == "undecided"
        self._held = ""
        self.orphan_close_seen = False
        self.open_seen = False

    def reasoning_field_seen(self) -> None:
        """The server sent reasoning in a field of its own: the content is the answer, hold nothing back."""
        self._undecided = False

    def feed(self, text: str) -> tuple[str, str]:
        held, self._held = self._held + text, ""
        if self._state == "start":
            stripped = held.lstrip()
            if stripped.startswith(OPEN):
                self._state = "thinking"
                self.open_seen = True
                held = stripped[len(OPEN):]
            elif OPEN.startswith(stripped):
                self._held = held  # still could become "<think>"
                return "", ""
            else:
                self._state = "undecided" if self._undecided else "answer"
        if self._state == "undecided":
            if not self._undecided:  # the reasoning field settled it: everything so far is answer
                self._state = "answer"
                return "", held
            end = held.find(CLOSE)
            if end < 0:
                self._held = held
                return "", ""
            self.orphan_close_seen = True
            self._state = "after_think"
            return held[:end], self._answer_start(held[end + len(CLOSE):])
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

    def finish(self, *, cut_off: bool = False) -> tuple[str, str]:
        """Whatever is still held back: unfinished thinking stays reasoning, anything else is answer.

        ``cut_off``: the stream stopped at the output limit. Text still undecided then was the
        thinking the limit interrupted (an answer comes after the thinking, never alone before it).
        """
        held, self._held = self._held, ""
        if self._state == "thinking" or (self._state == "undecided" and cut_off):
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
