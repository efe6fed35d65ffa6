"""The original GPU Watchdog agent API, as GPU Watchdog's chat panel uses it.

- ``POST /api/agent/chat`` ``{message, history?}`` -> ``{response, toolCalls: [{name, arguments, result}]}``;
  ``history`` is ``[{role: "user"|"assistant", content}]``, the conversation so far (the
  frontend keeps it; each request runs on a fresh thread seeded with it).
- ``GET /api/agent/health`` -> ``{available, model?, error?, llmAvailable}``: whether the chat
  answers. The panel disables its input while ``available`` is false, and gpudoc answers
  without a language model too (its deterministic diagnosis, labelled as such), so
  ``available`` is true whenever the agent runs; ``llmAvailable`` says whether the model
  answers, and when it does not, ``model`` (which the panel shows next to its badge) says the
  answers come from the diagnosis and ``error`` says why.
- ``GET /api/agent/logs?lines=N`` -> ``{logs, loading, error?}``: the server's recent log lines
  (``agent_logs``), where the original showed the model server's.
- Errors are ``{error, details, message}``: ``message`` is the sentence the panel displays.
  Invalid requests get ``400`` (not FastAPI's 422), as the frontend expects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpudoc.graph.contracts import ToolCallRecord
from gpudoc.graph.llm import LlmProbe
from gpudoc.server.agent_logs import recent_logs, requested_lines
from gpudoc.server.settings import ServerSettings
from gpudoc.server.turns import TurnFailedError, TurnService

ORIGINAL_API_PREFIX = "/api/"

log = logging.getLogger("gpudoc.server.api")


class HistoryEntry(BaseModel):
    """One earlier message of the conversation, as the frontend stores it (extra keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant"]
    content: str

    def to_message(self) -> BaseMessage:
        return HumanMessage(content=self.content) if self.role == "user" else AIMessage(content=self.content)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = Field(description="the operator's question")
    history: list[HistoryEntry] = Field(default_factory=list, description="the conversation so far, oldest first")

    @field_validator("message")
    @classmethod
    def _message_not_empty(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("message is empty")
        return text

    def limit_errors(self, settings: ServerSettings) -> list[dict[str, Any]]:
        """Violations of the server's limits, in FastAPI's error shape (empty when within them)."""
        errors = []
        if len(self.message) > settings.max_message_chars:
            errors.append({"loc": ("body", "message"), "type": "too_long", "msg": (
                f"message is {len(self.message)} characters; the limit is {settings.max_message_chars} "
                "(GPUDOC_MAX_MESSAGE_CHARS)")})
        if len(self.history) > settings.max_history_messages:
            errors.append({"loc": ("body", "history"), "type": "too_long", "msg": (
                f"history has {len(self.history)} messages; the limit is {settings.max_history_messages} "
                "(GPUDOC_MAX_HISTORY_MESSAGES)")})
        return errors


class ToolCallOut(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any = Field(description="the tool's JSON result, or its error message as text")

    @classmethod
    def from_record(cls, record: ToolCallRecord) -> "ToolCallOut":
        try:
            result: Any = json.loads(record.result)
        except ValueError:
            result = record.result
        return cls(name=record.name, arguments=record.arguments, result=result)


class ChatResponse(BaseModel):
    response: str
    toolCalls: list[ToolCallOut]  # noqa: N815 - the original API's field name


class HealthResponse(BaseModel):
    available: bool = Field(description="whether the chat answers (with or without the language model)")
    model: str | None = None
    error: str | None = None
    llmAvailable: bool = Field(description="whether the language model answers")  # noqa: N815 - wire name


#: what the panel shows next to its badge while answers come from the diagnosis alone
NO_MODEL_LABEL = "gpudoc diagnosis only - LLM offline"


class LogsResponse(BaseModel):
    logs: str
    loading: bool
    error: str | None = None


class ErrorResponse(BaseModel):
    error: str
    details: Any = None
    message: str = Field(description="one sentence for the person: what failed and what to do")

    @classmethod
    def of(cls, error: str, details: Any = None) -> "ErrorResponse":
        if isinstance(details, list) and details:
            said = "; ".join(str(item) for item in details)
        else:
            said = str(details) if details else ""
        return cls(error=error, details=details, message=f"{error}: {said}" if said else error)


def _describe(errors: list[Any]) -> list[str]:
    """FastAPI/pydantic errors as ``"field: reason"`` lines a person can act on."""
    lines = []
    for error in errors:
        if not isinstance(error, dict):
            lines.append(str(error))
            continue
        if error.get("type") == "json_invalid":  # loc is ("body", character offset), not a field
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            lines.append(f"the body is not valid JSON: {reason} (character {error.get('loc', ('', '?'))[-1]})")
            continue
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return lines


def install_validation_handler(app: FastAPI) -> None:
    """400 ``{error, details}`` for the original API; FastAPI's 422 elsewhere (LangServe's clients expect it)."""

    async def handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith(ORIGINAL_API_PREFIX):
            return JSONResponse(
                status_code=400,
                content=ErrorResponse.of("Invalid request", _describe(list(exc.errors()))).model_dump(),
            )
        return JSONResponse(status_code=422, content={"detail": _jsonable_errors(exc.errors())})

    app.add_exception_handler(RequestValidationError, handler)


def _jsonable_errors(errors: Any) -> Any:
    """Validation errors without the non-JSON bits pydantic may attach (exceptions in ``ctx``)."""
    return json.loads(json.dumps(list(errors), default=str))


TurnServiceProvider = Callable[[], TurnService]
LlmProbeFn = Callable[[], Awaitable[LlmProbe]]


def original_api_router(*, turns: TurnServiceProvider, settings: ServerSettings, probe: LlmProbeFn) -> APIRouter:
    router = APIRouter(prefix="/api/agent", tags=["original GPU Watchdog API"])

    @router.post(
        "/chat",
        response_model=ChatResponse,
        responses={400: {"model": ErrorResponse}, 500: {"model": ErrorResponse}},
        summary="Ask the agent one question (stateless: send the history along)",
    )
    async def chat(body: ChatRequest) -> Any:
        errors = body.limit_errors(settings)
        if errors:
            raise RequestValidationError(errors)
        try:
            service = turns()
        except HTTPException as exc:
            return JSONResponse(status_code=exc.status_code,
                                content=ErrorResponse.of("The agent is not running", exc.detail).model_dump())
        try:
            result = await service.run(body.message, history=[entry.to_message() for entry in body.history])
        except TurnFailedError as exc:
            log.warning("agent turn failed: %s", exc)
            return JSONResponse(status_code=500, content=ErrorResponse.of("The agent failed", str(exc)).model_dump())
        return ChatResponse(response=result.answer, toolCalls=[ToolCallOut.from_record(call) for call in result.tool_calls])

    @router.get("/health", response_model=HealthResponse, response_model_exclude_none=True,
                summary="Whether the chat answers, and whether the language model does")
    async def health() -> HealthResponse:
        try:
            turns()
        except HTTPException as exc:
            return HealthResponse(available=False, error=str(exc.detail), llmAvailable=False)
        probe_result = await probe()
        if probe_result.available:
            return HealthResponse(available=True, model=probe_result.model, llmAvailable=True)
        return HealthResponse(available=True, model=NO_MODEL_LABEL, error=probe_result.error, llmAvailable=False)

    recent_logs()  # start keeping lines now, so the first request finds the server's start-up

    @router.get("/logs", response_model=LogsResponse, response_model_exclude_none=True,
                summary="The server's recent log lines (the original showed the model server's)")
    async def logs(request: Request) -> LogsResponse:
        lines = recent_logs().tail(requested_lines(request.query_params.get("lines")))
        return LogsResponse(logs="\n".join(lines), loading=False)

    return router
