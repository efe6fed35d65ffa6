"""Source notes: what a source says about the facts it just returned, carried to the tool output.

Why: a source degrades per value, never per response. When a backend leaves a field out, sends
one in an unexpected form, or reports a figure that means something else than its name says
(GPU Watchdog's ``healthy``), or is configured without a signal (a dcgm-exporter whose counters
file leaves out row-remap pending), the source keeps every other value and says what it did, in
one line: ``"slurm.jobsPending not reported by this backend"``. Those lines must reach whoever reads
the facts (the model, the diagnosis), or a ``None`` reads as a healthy zero.

How (one mechanism for every source): while facts are being gathered, a source calls
``note("...")``. Whoever gathers them opens ``collecting_notes()`` around the calls and reads
the lines back: each cluster tool does so and adds them to its output under ``source_notes``;
``gather_facts`` adds them to the diagnosis's limitations. The collector lives in a context
variable, so the tools of one agent round, run in parallel as separate tasks, each get their own
lines, while the concurrent calls inside one tool (``asyncio.gather`` copies the context) all
report into that tool's collector. A note made with no collector open goes nowhere: facts
fetched outside a tool or a diagnosis have no reader to tell.

Write notes for the reader of the facts: name the value (wire name or fact), say what happened
and, when useful, what stands in for it. Note again on every call that degrades (also when the
facts come from a cache): each tool call has its own collector.

A list the source knows to be incomplete (a backend that returns at most N events, oldest
first) is also marked with ``note_incomplete(kind, why, text)``: whoever counts in that list asks
``incomplete(kind)`` and writes the count as unknown, with the reason, instead of a count of
what happened to arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from gpudoc.tools.models.text import neutralise_markup

#: the most notes one collector keeps; the rest are counted, so one broken field of 512 GPUs
#: cannot crowd a tool's output
MAX_NOTES = 12
#: the longest one note may be
MAX_NOTE_CHARS = 240


class SourceNotes:
    """The notes made while one tool call or one diagnosis gathered its facts: unique, in order."""

    def __init__(self, limit: int = MAX_NOTES):
        self.limit = limit
        self._lines: dict[str, None] = {}
        self.dropped = 0
        #: kind of list -> why it is incomplete (``note_incomplete``)
        self.incomplete: dict[str, str] = {}

    def add(self, text: str) -> None:
        line = neutralise_markup(text)  # notes quote what a backend sent: one line, no markup
        if len(line) > MAX_NOTE_CHARS:
            line = line[: MAX_NOTE_CHARS - 1].rstrip() + "…"
        if not line or line in self._lines:
            return
        if len(self._lines) >= self.limit:
            self.dropped += 1
            return
        self._lines[line] = None

    @property
    def lines(self) -> list[str]:
        """The notes, plus one line counting those left out."""
        shown = list(self._lines)
        if self.dropped:
            shown.append(f"(and {self.dropped} more notes of the same kind)")
        return shown

    def __bool__(self) -> bool:
        return bool(self._lines)


_current: ContextVar[SourceNotes | None] = ContextVar("gpudoc_source_notes", default=None)


def current_notes() -> SourceNotes | None:
    """The collector open in this context, if any (renderers size their output by it)."""
    return _current.get()


def note(text: str) -> None:
    """Record one line about the facts being returned (no-op when nobody collects)."""
    collector = _current.get()
    if collector is not None:
        collector.add(text)


#: the kinds of list a source may mark incomplete
ALERT_EVENTS = "alert events"


def note_incomplete(kind: str, why: str, text: str) -> None:
    """Mark the ``kind`` list just returned as incomplete (``why``: a short reason a count can
    quote) and note ``text`` for the reader."""
    collector = _current.get()
    if collector is not None:
        collector.incomplete[kind] = why
        collector.add(text)


def incomplete(kind: str) -> str | None:
    """Why the ``kind`` list gathered in this context is incomplete, or ``None`` if it is not."""
    collector = _current.get()
    return None if collector is None else collector.incomplete.get(kind)


@contextmanager
def collecting_notes() -> Iterator[SourceNotes]:
    """Collect the notes sources make inside this block (nested blocks collect separately)."""
    collector = SourceNotes()
    token = _current.set(collector)
    try:
        yield collector
    finally:
        _current.reset(token)
