"""Reading a streamed chat completion cheaply: raw server-sent events in, a few merged chunks out.

Why: a reasoning model streams a couple of thousand tokens per turn, one server-sent event per
token. The OpenAI SDK turns every event into a pydantic object, ``ChatOpenAI`` dumps it back to
a dict, and LangChain's callbacks, LangGraph's ``messages`` stream, the agent's runner and the
HTTP server then each handle it: per token, several times what receiving the token costs. Here
the events are parsed straight from the response body into the same dicts (``orjson``), and
consecutive events are merged into one chunk, so that everything downstream runs once per
*flush* instead of once per token:

- the first chunk of a stream is passed on at once (time to first token is unchanged);
- after that, chunks are merged for at most ``flush_s`` (a few tens of milliseconds) and passed
  on together; the merged text is exactly the concatenation of the events' text;
- a chunk that cannot be merged (another choice, a differing field) ends the merge, and the end
  of the stream passes on whatever is left.

``CoalescingCompletions`` stands in for the SDK's ``chat.completions`` resource inside
``ChatOpenAI`` (``ReasoningChatOpenAI`` installs it): non-streamed requests go to the SDK as
before; a streamed request is sent by the SDK (retries, status errors, authentication and
timeouts stay the SDK's) and its body is read here. ``ChatOpenAI`` accepts dict chunks as they
are, so it converts, counts usage and reports the chunks exactly as it would the SDK's objects.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import openai
import orjson

try:  # the SDK's own HTTP client; ChatOpenAI normally hands it an ``httpx`` client instead
    import httpx2

    _TIMEOUTS: tuple[type[BaseException], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
    _TRANSPORT: tuple[type[BaseException], ...] = (httpx.RequestError, httpx2.RequestError, ssl.SSLError,
                                                   anyio.EndOfStream)
except ImportError:  # pragma: no cover - depends on the SDK's version
    _TIMEOUTS = (httpx.TimeoutException,)
    _TRANSPORT = (httpx.RequestError, ssl.SSLError, anyio.EndOfStream)

#: vLLM's field names for the reasoning text, newest first
REASONING_FIELDS = ("reasoning", "reasoning_content")
#: delta fields whose text is concatenated when events merge
TEXT_FIELDS = frozenset({"content", "refusal", *REASONING_FIELDS})
#: passed on at most this long after the last chunk when events keep arriving
DEFAULT_FLUSH_S = 0.03


class CoalescingCompletions:
    """The SDK's ``chat.completions`` resource, with streamed responses read by ``read_chunks``."""

    def __init__(self, completions: Any, *, flush_s: float = DEFAULT_FLUSH_S) -> None:
        self._completions = completions
        self.flush_s = flush_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions, name)

    async def create(self, **payload: Any) -> Any:
        if not payload.get("stream"):
            return await self._completions.create(**payload)
        context = self._completions.with_streaming_response.create(**payload)
        response = await context.__aenter__()  # sends the request; raises the SDK's status errors
        return ChunkStream(context, response.http_response, self.flush_s)


class ChunkStream:
    """An open streamed response as an async iterator of merged ``chat.completion.chunk`` dicts.

    Also an async context manager (as the SDK's stream is): leaving it closes the response.
    """

    def __init__(self, context: Any, response: Any, flush_s: float) -> None:
        self._context = context
        self._chunks = coalesce(_events(response), flush_s)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            await self._context.__aexit__(None, None, None)

    async def __aenter__(self) -> "ChunkStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _events(response: Any) -> AsyncIterator[list[dict[str, Any]]]:
    """The JSON events of a server-sent-event body, one list per network read, until ``[DONE]``.

    Transport failures become the SDK's ``APITimeoutError``/``APIConnectionError`` and an
    ``error`` object in the stream its ``APIError``, as the SDK's own stream reports them.
    """
    buffer = b""
    data: list[bytes] = []
    done = False
    try:
        async for block in response.aiter_bytes():
            if done:
                continue  # read the body to its end, so that the connection goes back to the pool
            buffer += block
            *lines, buffer = buffer.split(b"\n")
            batch: list[dict[str, Any]] = []
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                elif not line and data:  # a blank line ends the event
                    payload = b"\n".join(data)
                    data = []
                    if payload.startswith(b"[DONE]"):
                        done = True
                        break
                    try:
                        batch.append(_parse(payload, response))
                    except openai.APIError:
                        if batch:  # what came before the error is passed on first
                            yield batch
                        raise
                # "event:", "id:", "retry:" and ":" comment lines (keep-alives) carry nothing here
            if batch:
                yield batch
    except _TIMEOUTS as error:
        raise openai.APITimeoutError(request=response.request) from error
    except _TRANSPORT as error:
        raise openai.APIConnectionError(request=response.request) from error


def _parse(payload: bytes, response: Any) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise openai.APIError(f"the model server sent an event that is not JSON: {payload[:200]!r}",
                              request=response.request, body=None) from error
    if not isinstance(event, dict):
        raise openai.APIError(f"the model server sent an event that is not an object: {payload[:200]!r}",
                              request=response.request, body=None)
    error = event.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(message if isinstance(message, str) and message else "An error occurred during streaming",
                              request=response.request, body=error)
    return event


def merge_chunk(into: dict[str, Any], chunk: dict[str, Any]) -> bool:
    """Add ``chunk`` to the merged chunk ``into`` (changed in place); False, unchanged, when it cannot be.

    Text fields of the delta concatenate, tool-call fragments join by their index (arguments
    concatenate), the last ``finish_reason`` and ``usage`` win; any other field must agree.
    """
    choices, added = into.get("choices") or [], chunk.get("choices") or []
    if len(choices) > 1 or len(added) > 1:
        return False
    if choices and added:
        if not _merge_choice(choices[0], added[0], check_only=True):
            return False
        _merge_choice(choices[0], added[0], check_only=False)
    elif added:
        into["choices"] = [_copy_choice(added[0])]
    if chunk.get("usage") is not None:
        into["usage"] = chunk["usage"]
    return True


def _copy_choice(choice: dict[str, Any]) -> dict[str, Any]:
    copy = dict(choice)
    delta = dict(choice.get("delta") or {})
    if delta.get("tool_calls"):
        delta["tool_calls"] = [_copy_call(call) for call in delta["tool_calls"]]
    copy["delta"] = delta
    return copy


def _copy_call(call: dict[str, Any]) -> dict[str, Any]:
    copy = dict(call)
    if isinstance(call.get("function"), dict):
        copy["function"] = dict(call["function"])
    return copy


def _merge_choice(into: dict[str, Any], choice: dict[str, Any], *, check_only: bool) -> bool:
    if into.get("index", 0) != choice.get("index", 0):
        return False
    if into.get("logprobs") is not None or choice.get("logprobs") is not None:
        return False  # log-probabilities belong to their own tokens: kept per event
    for key, value in choice.items():
        if key in ("index", "delta", "logprobs") or value is None:
            continue
        if key == "finish_reason":
            if not check_only:
                into[key] = value
        elif into.get(key) is None:
            if not check_only:
                into[key] = value
        elif into[key] != value:
            return False
    delta, added = into.setdefault("delta", {}), choice.get("delta") or {}
    for key, value in added.items():
        if value is None:
            continue
        if key in TEXT_FIELDS and isinstance(value, str):
            if not check_only:
                delta[key] = (delta.get(key) or "") + value
        elif key == "tool_calls" and isinstance(value, list):
            if not check_only:
                _merge_calls(delta, value)
        elif key == "role":
            if not check_only and not delta.get("role"):
                delta[key] = value
        elif delta.get(key) is not None and delta[key] != value:
            return False
        elif not check_only:
            delta[key] = value
    return True


def _merge_calls(delta: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    merged = delta.setdefault("tool_calls", [])
    by_index = {call.get("index"): call for call in merged}
    for call in calls:
        known = by_index.get(call.get("index"))
        if known is None:
            known = _copy_call(call)
            merged.append(known)
            by_index[call.get("index")] = known
            continue
        for key, value in call.items():
            if key == "function" and isinstance(value, dict):
                function = known.setdefault("function", {})
                for name, part in value.items():
                    if part is None:
                        continue
                    if name == "arguments":
                        function[name] = (function.get(name) or "") + part
                    elif not function.get(name):
                        function[name] = part
            elif value is not None and not known.get(key):
                known[key] = value


def _fresh(chunk: dict[str, Any]) -> dict[str, Any]:
    """A merge target starting with ``chunk`` (copied: later merges must not change the event)."""
    copy = dict(chunk)
    if chunk.get("choices"):
        copy["choices"] = [_copy_choice(choice) for choice in chunk["choices"]]
    return copy


def _visible(chunk: dict[str, Any]) -> bool:
    """Whether a chunk shows the reader anything (text or a tool call), unlike a bare role or usage chunk."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("tool_calls") or any(delta.get(key) for key in TEXT_FIELDS):
            return True
    return False


class _Ended:
    """What the reader puts last: the end of the stream, or the error that ended it."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def coalesce(batches: AsyncIterator[list[dict[str, Any]]], flush_s: float) -> AsyncIterator[dict[str, Any]]:
    """Merged chunks: at once until the first text, then one per ``flush_s`` while events keep coming.

    A reader task takes the events off the connection as they arrive; this generator passes on
    everything that arrived in each interval as one chunk. Under load the loop gets round to a
    stream less often, and then more events are merged, not fewer. ``flush_s`` 0 passes on what
    arrived between two turns of the loop. When the stream fails, what was merged so far is
    passed on before the error.
    """
    arrived: collections.deque[list[dict[str, Any]] | _Ended] = collections.deque()
    loop = asyncio.get_running_loop()
    news = loop.create_future()  # set when something arrives while nothing was waiting to be passed on

    def deliver(item: list[dict[str, Any]] | _Ended) -> None:
        arrived.append(item)
        if not news.done():
            news.set_result(None)

    async def read() -> None:
        try:
            async for batch in batches:
                deliver(batch)
            deliver(_Ended())
        except Exception as error:
            deliver(_Ended(error))

    reader = asyncio.create_task(read())
    pending: dict[str, Any] | None = None
    last_flush: float | None = None  # None: no text passed on yet, so nothing waits

    def flush() -> dict[str, Any]:
        nonlocal pending, last_flush
        chunk, pending = pending, None
        assert chunk is not None
        if last_flush is not None or _visible(chunk):
            last_flush = time.monotonic()
        return chunk

    try:
        while True:
            if not arrived:
                if pending is not None and last_flush is not None:
                    # Something waits to be passed on: let the rest of the interval's events come
                    # (the end of the stream cuts it short), then pass them on together.
                    wait = last_flush + flush_s - time.monotonic()
                    if wait > 0:
                        await asyncio.wait((reader,), timeout=wait)
                    if not arrived:
                        yield flush()
                        continue
                else:
                    news = loop.create_future()
                    if not arrived:
                        await news
            end: _Ended | None = None
            while arrived:
                item = arrived.popleft()
                if isinstance(item, _Ended):
                    end = item
                    break
                for event in item:
                    if pending is None:
                        pending = _fresh(event)
                    elif not merge_chunk(pending, event):
                        chunk = flush()
                        pending = _fresh(event)
                        yield chunk
            if end is not None:
                if pending is not None:
                    yield flush()
                if end.error is not None:
                    raise end.error
                return
            if pending is not None and (last_flush is None or time.monotonic() - last_flush >= flush_s):
                yield flush()
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()
