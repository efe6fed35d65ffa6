"""What a stub vLLM policy returns: one assistant reply, and filler that makes it a long stream.

Part of the stub vLLM server (``tests/doubles/stub_vllm.py``), a TEST DOUBLE: a policy maps a
chat-completions request body to a ``StubReply``; the server writes it in vLLM's wire format.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class StubToolCall:
    name: str
    arguments: str  # raw JSON text as the model would emit it (may be malformed on purpose)
    id: str = field(default_factory=lambda: f"chatcmpl-tool-{uuid.uuid4().hex[:16]}")


@dataclass
class StubReply:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[StubToolCall] = field(default_factory=list)
    stop: str | None = None  # finish_reason to report instead of "stop"/"tool_calls", e.g. "length"

    @property
    def finish_reason(self) -> str:
        return self.stop or ("tool_calls" if self.tool_calls else "stop")


Policy = Callable[[dict[str, Any]], StubReply]
"""Maps a chat-completions request body to the reply the double sends back."""


#: words the double repeats to make a long stream (no digits: nothing for the grounding check to doubt)
FILLER = "the readings stay inside their limits so this part of the answer only adds length".split()


def filler(words: int) -> str:
    """``words`` words of filler prose, one streamed piece each, ending with a paragraph break."""
    if words <= 0:
        return ""
    return " ".join(FILLER[i % len(FILLER)] for i in range(words)) + ".\n\n"


def padded(reply: StubReply, *, reasoning_words: int, answer_words: int) -> StubReply:
    """The reply with filler before its reasoning and (for an answer, not a tool call) its content:
    a long stream, as a reasoning model writes, with the policy's own text intact at the end."""
    if not reasoning_words and not answer_words:
        return reply
    content = reply.content if reply.tool_calls else filler(answer_words) + reply.content
    return StubReply(content=content, reasoning=filler(reasoning_words) + reply.reasoning,
                     tool_calls=reply.tool_calls, stop=reply.stop)
