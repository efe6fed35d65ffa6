"""The OpenAPI document says every status a route can answer, with the body it answers with.

Why a post-processing step: the guards, the admission control and the error handlers answer in
front of or around the routes (LangServe's among them, which ``add_routes`` declares with 200
and 422 only), so FastAPI cannot see those statuses. Without them a client generated from the
document, or a contract test such as schemathesis, meets undocumented 400, 401, 409, 413, 429
and 503 answers. This adds them, once, where the server really answers them:

- every route behind the token: 401;
- every JSON ``POST``: 413, and on the original API 400 (not UTF-8, not JSON, nested too deep,
  a lone surrogate; LangServe's routes answer those with their declared 422);
- every route that runs turns: 429 with ``Retry-After``, 500 (the agent failed) and 503 (the
  turn was not saved, or the agent is not running);
- LangServe's turn routes: 409 (a history that contradicts the thread), as FastAPI's
  ``{"detail": "..."}``; its ``/c/{config_hash}/`` routes: 400 for a hash it did not make;
- the streaming routes answer ``text/event-stream``, not the JSON LangServe declares.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gpudoc.server.admission import STREAMING_ROUTES, turn_route
from gpudoc.server.errors import ErrorResponse
from gpudoc.server.guards import ORIGINAL_API_PREFIX, needs_json, needs_token

_ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
_HTTP_ERROR = {"$ref": "#/components/schemas/HTTPError"}
_HTTP_ERROR_SCHEMA = {
    "title": "HTTPError", "type": "object", "required": ["detail"],
    "properties": {"detail": {"title": "Detail", "type": "string"}},
}


def _response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _errors_of(path: str, method: str) -> dict[str, dict[str, Any]]:
    """The statuses the guards, the admission control and the handlers add to one operation."""
    added: dict[str, dict[str, Any]] = {}
    if needs_token(path):
        added["401"] = _response("the API token is missing or wrong (GPUDOC_API_TOKEN)", _ERROR)
    if method == "post" and needs_json(path):
        if path.startswith(ORIGINAL_API_PREFIX):  # LangServe's routes say so with their 422
            added["400"] = _response("the body is not UTF-8 JSON, nests too deep or holds a lone surrogate, "
                                     "or a field is invalid", _ERROR)
        added["413"] = _response("the body is larger than GPUDOC_MAX_BODY_BYTES", _ERROR)
    if "{config_hash}" in path:
        added["400"] = _response("the config hash is not one this server made", _HTTP_ERROR)
    route = turn_route({"type": "http", "method": method.upper(), "path": path.replace("{config_hash}", "x")})
    if route is not None:
        added["429"] = _response(
            "the server runs GPUDOC_MAX_CONCURRENT_TURNS turns already; retry after Retry-After seconds", _ERROR,
            {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}})
        added["500"] = _response("the agent failed (an invoke or batch turn; a stream sends an error event)", _ERROR)
        added["503"] = _response("the turn was not saved (the conversation store failed), or the agent is not "
                                 "running (the server is starting or stopping)", _ERROR)
        if route != "chat":
            added["409"] = _response("the history sent contradicts the thread's conversation", _HTTP_ERROR)
    return added


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare the statuses of ``_errors_of`` on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
        components.setdefault("HTTPError", _HTTP_ERROR_SCHEMA)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status, response in _errors_of(path, method).items():
                    responses.setdefault(status, response)
                if turn_route({"type": "http", "method": method.upper(), "path": path}) in STREAMING_ROUTES:
                    ok = responses.get("200", {})
                    ok["content"] = {"text/event-stream": {"schema": {"description": (
                        "server-sent events: metadata, data (one message chunk or log patch each), end; "
                        "an error event when the turn fails")}}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
