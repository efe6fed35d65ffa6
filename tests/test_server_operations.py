"""Operating the server, in process: health and readiness, metrics, the bearer token, CORS,
request ids, and the chat page with its vendored libraries.

The language model is the stub vLLM server of ``tests/doubles`` (a TEST DOUBLE that speaks vLLM's
wire format; the ``stub`` fixture of ``tests/conftest.py``); the cluster is the simulator with its
clock frozen (``tests/served_app.py``).
"""

from __future__ import annotations

from pathlib import Path

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_app import HOT_QUESTION, closed_port_url, human, metric_value, serving, settings_for


async def test_healthz_and_readyz(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    down_url = closed_port_url()
    async with serving(settings_for(tmp_path, down_url)) as client:
        degraded = await client.get("/readyz")
        answer = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["degraded"] is False
    assert ready.json()["checks"]["source"]["detail"] == "source 'sim' answers: 4 nodes"
    # Without the model the server still answers (from the deterministic diagnosis), so it stays
    # in the load balancer, marked degraded.
    assert degraded.status_code == 200
    assert degraded.json()["ready"] is True and degraded.json()["degraded"] is True
    checks = degraded.json()["checks"]
    assert checks["llm"]["ok"] is False and down_url in checks["llm"]["detail"]
    assert checks["source"]["ok"] is True and checks["store"]["ok"] is True
    assert answer.status_code == 200 and "Answered without the language model" in answer.json()["response"]


async def test_metrics_count_requests_llm_calls_tokens_and_tools(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        await client.post("/agent/invoke", json={"input": {"messages": [human(HOT_QUESTION)]}})
        await client.post("/agent/invoke", json={"input": {"messages": []}})
        response = await client.get("/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert metric_value(text, "gpudoc_http_requests_total", route="/agent/invoke", status="200") == 1
    assert metric_value(text, "gpudoc_http_requests_total", route="/agent/invoke", status="422") == 1
    assert metric_value(text, "gpudoc_http_request_duration_seconds_count", route="/agent/invoke") == 2
    assert metric_value(text, "gpudoc_llm_calls_total", outcome="ok") == len(stub.requests) == 2
    assert metric_value(text, "gpudoc_llm_tokens_total", kind="completion") > 0
    assert metric_value(text, "gpudoc_tool_calls_total", tool="get_gpu_history", outcome="ok") == 1
    assert metric_value(text, "gpudoc_agent_turns_total", outcome="answered") == 1
    assert metric_value(text, "gpudoc_degraded_answers_total") == 0


async def test_bearer_token_protects_agent_and_api_routes_only(tmp_path: Path, stub: StubVllmServer) -> None:
    settings = settings_for(tmp_path, stub.url, api_token="s3cret")
    invoke = {"input": {"messages": [human(HOT_QUESTION)]}}
    async with serving(settings) as client:
        refused = [
            await client.post("/agent/invoke", json=invoke),
            await client.post("/agent/stream", json=invoke, headers={"Authorization": "Bearer wrong"}),
            await client.get("/agent/input_schema"),
            await client.post("/api/agent/chat", json={"message": "hi"}, headers={"Authorization": "Basic s3cret"}),
            await client.get("/api/agent/health"),
        ]
        allowed = await client.post("/agent/invoke", json=invoke, headers={"Authorization": "Bearer s3cret"})
        health = await client.get("/api/agent/health", headers={"Authorization": "bearer s3cret"})
        open_paths = [await client.get(path) for path in ("/", "/healthz", "/static/app.js", "/agent/playground/")]
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "GPUDOC_API_TOKEN" in response.json()["details"]
        assert response.json()["message"].startswith("Unauthorized: ")  # the chat panel shows this
    assert allowed.status_code == 200 and health.status_code == 200
    assert [r.status_code for r in open_paths] == [200, 200, 200, 200]
    assert len(stub.requests) == 2  # only the authorised turn reached the model


async def test_without_a_token_setting_no_header_is_needed(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url, api_token="")) as client:
        response = await client.post("/api/agent/chat", json={"message": HOT_QUESTION})
    assert response.status_code == 200


async def test_cors_allows_only_listed_origins_and_preflight_needs_no_token(
    tmp_path: Path, stub: StubVllmServer
) -> None:
    settings = settings_for(tmp_path, stub.url, cors_origins="https://watchdog.example, http://localhost:5173",
                            api_token="s3cret")
    async with serving(settings) as client:
        preflight = await client.options("/api/agent/chat", headers={
            "Origin": "https://watchdog.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        allowed = await client.get("/api/agent/health", headers={"Origin": "http://localhost:5173",
                                                                 "Authorization": "Bearer s3cret"})
        foreign = await client.get("/api/agent/health", headers={"Origin": "https://evil.example",
                                                                 "Authorization": "Bearer s3cret"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://watchdog.example"
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in foreign.headers


async def test_request_ids_are_echoed_or_created(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        echoed = await client.get("/healthz", headers={"X-Request-Id": "incident-42.a"})
        created = await client.get("/healthz")
        sanitised = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
        refused = await client.post("/agent/invoke", json={"input": {"messages": []}}, headers={"X-Request-Id": "r-1"})
    assert echoed.headers["x-request-id"] == "incident-42.a"
    assert len(created.headers["x-request-id"]) == 32
    assert sanitised.headers["x-request-id"] != "bad id\twith spaces"
    assert refused.headers["x-request-id"] == "r-1"


async def test_chat_page_and_vendored_libraries_are_served(tmp_path: Path, stub: StubVllmServer) -> None:
    async with serving(settings_for(tmp_path, stub.url)) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        marked = await client.get("/static/vendor/marked.min.js")
        purify = await client.get("/static/vendor/purify.min.js")
        missing = await client.get("/static/nope.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text
    assert "agent/stream" in script.text
    assert marked.status_code == 200 and "marked v" in marked.text[:200]
    assert purify.status_code == 200 and "@license DOMPurify" in purify.text[:200]
    assert missing.status_code == 404
