"""Recorded model conversations (vcrpy cassettes): one directory per recording, one file per case.

Why replay: CI has no GPU, and an evaluation must give the same scores every run. A recording is
``evals/cassettes/<label>/``: ``<case-id>.yaml`` per case (the case's HTTP exchanges with the
model server) and ``recording.json`` saying what answered (the model, or a test double named as
such), with which sampling, when. The committed recording ``stub-vllm`` comes from the stub vLLM
server in ``tests/doubles/`` running its reference policy: it pins the client path, the graph and
the scorer, not any model's judgement.

What replay matches a request on (the ``conversation`` matcher), and why:

- method and path (``POST /v1/chat/completions``), not host or port: a recording replays
  wherever it was made;
- the user questions of the thread, in order: which conversation and which turn;
- the names of the tools offered (none on the answer call): a planning call is not an answer call,
  and a tool added or removed changes what a model could do;
- the tool calls already made in the current turn, by name and canonical arguments: the agent
  reached the same point by the same path.

Ignored on purpose: headers, tool-call ids, the system prompt's wording, tool descriptions and
schemas, tool results, sampling parameters, JSON formatting. Changing those does not change which
recorded answer belongs to which request, and the scorer checks the answer against *this* run's
tool results anyway (a changed reading shows up as an unverified number).

Each recorded exchange plays once; a request that matches none, or exchanges left unplayed at
the end of a case, fail that case with what differed. Re-record with ``gpudoc eval --record``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import vcr
from pydantic import BaseModel, Field
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.request import Request

CASSETTE_ROOT = Path(__file__).parent / "cassettes"
DEFAULT_RECORDING = "stub-vllm"
MANIFEST = "recording.json"
#: where replayed requests "go": nothing listens there, vcrpy answers from the cassette
REPLAY_BASE_URL = "http://127.0.0.1:9/v1"
SECRET_HEADERS = ["authorization", "api-key", "x-api-key", "openai-organization", "cookie"]


class RecordingManifest(BaseModel):
    """What a recording's answers came from. Written by ``--record``, read by replay and reports."""

    label: str
    answers_from: str = Field(description="the model and server, or the test double, that answered")
    test_double: bool
    model: str
    base_url: str
    sampling: dict[str, Any] = Field(default_factory=dict)
    recorded_at: datetime
    gpudoc_version: str = ""
    cases: list[str] = Field(default_factory=list)


def recording_dir(label_or_path: str) -> Path:
    """``stub-vllm`` -> ``evals/cassettes/stub-vllm``; a path with a slash is used as it is."""
    return Path(label_or_path) if "/" in label_or_path or label_or_path.startswith(".") else CASSETTE_ROOT / label_or_path


def read_manifest(directory: Path) -> RecordingManifest:
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{directory} holds no recording ({MANIFEST} missing); record one with "
                                "`gpudoc eval --record`")
    return RecordingManifest.model_validate_json(path.read_text())


def write_manifest(directory: Path, manifest: RecordingManifest, *, merge: bool) -> None:
    """Write the manifest; ``merge`` keeps the case list of an earlier recording (a partial re-record)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST
    if merge and path.exists():
        earlier = RecordingManifest.model_validate_json(path.read_text())
        manifest = manifest.model_copy(update={"cases": sorted(set(earlier.cases) | set(manifest.cases))})
    path.write_text(manifest.model_dump_json(indent=2) + "\n")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


# ----------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _canonical(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            return arguments
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def conversation_key(body: bytes | str | None) -> dict[str, Any]:
    """The parts of a chat-completions request replay matches on (see the module docstring)."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {"unreadable_body": True}
    messages = data.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    calls = [f"{(c.get('function') or {}).get('name')}({_canonical((c.get('function') or {}).get('arguments'))})"
             for m in messages[last_user + 1:] if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
    return {
        "questions": [_text(m.get("content")) for m in messages if m.get("role") == "user"],
        "tools_offered": sorted((t.get("function") or {}).get("name", "") for t in data.get("tools") or []),
        "calls_this_turn": calls,
    }


def same_conversation(current: Request, recorded: Request) -> None:
    """vcrpy matcher (called with this run's request, then a recorded one): passes, or raises
    AssertionError saying what differs."""
    was, now_ = conversation_key(recorded.body), conversation_key(current.body)
    differences = [f"{key}: recorded {was.get(key)!r}, now {now_.get(key)!r}"
                   for key in ("questions", "tools_offered", "calls_this_turn", "unreadable_body")
                   if was.get(key) != now_.get(key)]
    assert not differences, "; ".join(differences)


def cassette_library(directory: Path, *, record: bool, passthrough: Iterable[str] = ()) -> vcr.VCR:
    """The vcrpy configuration for a recording: replay only (``record=False``) or overwrite each case.

    ``passthrough``: URL prefixes (``http://host:port``) neither recorded nor replayed, such as the
    LangSmith endpoint receiving traces while a cassette is in use. By origin, not host: the model
    and LangSmith may both be on localhost.
    """
    prefixes = tuple(passthrough)

    def keep(request: Request) -> Request | None:
        return None if prefixes and request.uri.startswith(prefixes) else request

    library = vcr.VCR(
        cassette_library_dir=str(directory),
        record_mode="all" if record else "none",
        match_on=["method", "path", "conversation"],
        filter_headers=SECRET_HEADERS,
        decode_compressed_response=True,
        before_record_request=keep,
    )
    library.register_matcher("conversation", same_conversation)
    return library


def cassette_name(case_id: str) -> str:
    return f"{case_id}.yaml"


def replay_problem(errors: Iterable[BaseException]) -> str | None:
    """Why replay could not answer a request (no recorded exchange matched), from the model client's errors."""
    for error in errors:
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, CannotOverwriteExistingCassetteException):
                return _short_vcr_message(str(seen))
            seen = seen.__cause__ or seen.__context__
    return None


def _short_vcr_message(message: str) -> str:
    """The first difference vcrpy reports for the closest recorded request, without its advice."""
    head = "no recorded exchange matches this request"
    for line in message.splitlines():
        _, found, difference = line.partition("same_conversation differs: ")
        if found:
            return f"{head}: {difference.strip()[:600]}"
    if "0 played" not in message and "interactions:" in message:
        return f"{head} (every recorded exchange was used: the agent made more model calls than recorded)"
    return f"{head}: {message.strip().splitlines()[0][:300]}"
