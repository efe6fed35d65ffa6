"""The chat page of a real ``gpudoc serve`` in headless Chromium: the streamed answer with its
tool panels and chart, the token dialog and the no-model banner, and answers that render no link,
image or HTML.

The language model is the stub vLLM server (a TEST DOUBLE) running in this test process, so the
tests can watch its side of the connection.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from tests.doubles.keyword_policy import keyword_then_answer
from tests.doubles.stub_vllm import PLANNING_TEXT, StubVllmServer, planning_text_policy
from tests.served_gpudoc import REPO, gpudoc_serve
from tests.services.chromium import browser_page, chromium_or_skip

ARTIFACTS = REPO / "artifacts"


def ask_on_page(page: Any, question: str) -> None:
    """Ask and wait until the page marks this turn done."""
    done = page.locator('section.turn[data-state="done"]').count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    # a selector, not a JavaScript predicate: the page's CSP forbids the eval a predicate needs
    page.locator('section.turn[data-state="done"]').nth(done).wait_for(timeout=60_000)


def test_chat_page_streams_the_answer_with_tool_panels_and_a_chart(tmp_path: Path) -> None:
    chromium_or_skip()
    stub = StubVllmServer(token_delay=0.002, policy=planning_text_policy)
    with stub as llm_url, gpudoc_serve(tmp_path, llm_url, "--scenario", "thermal-throttle@node-2/gpu-3") as url, \
            browser_page() as page:
        page.goto(url + "/")
        page.wait_for_selector("#llm-status.pill-ok")
        ask_on_page(page, "Is node-2 running hot?")

        tools = page.locator("details.step.tool")
        assert sorted(tools.evaluate_all("els => els.map(e => e.dataset.tool)")) == ["get_gpu_history", "get_node_details"]
        assert page.locator("details.step.tool .step-state.ok").count() == 2
        panel = page.locator('details.step.tool[data-tool="get_gpu_history"]')
        panel.locator("summary").click()
        assert '"node_id": "node-2"' in panel.locator(".step-body pre").first.inner_text()
        assert '"point_fields"' in panel.locator(".step-body pre").nth(1).inner_text()

        chart = page.locator("figure.chart")
        assert "node-2 temperature" in chart.locator("figcaption").inner_text()
        assert chart.locator("polyline.series").count() == 8  # one line per GPU
        assert page.locator("details.step.thinking").count() == 1

        answer = page.locator(".answer")
        assert PLANNING_TEXT not in answer.inner_text()  # what the model wrote while planning is not the answer
        assert PLANNING_TEXT in page.locator("details.step.thinking").text_content()
        assert answer.locator("table").count() == 1  # markdown tables are rendered
        assert page.locator("#degraded-banner").is_hidden()

        ask_on_page(page, "Why are jobs pending?")  # a follow-up on the same thread
        assert page.locator("section.turn").count() == 2
        assert page.locator("#send").is_enabled()
        panel.locator("summary").click()  # fold the panel again for the picture
        page.evaluate("document.getElementById('conversation').scrollTop = 0")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-page.png"))
        assert page.errors == []
    conversations = [r for r in stub.requests if r["messages"][-1]["role"] == "user"]
    last_plan = conversations[-1]["messages"]
    assert [m["content"] for m in last_plan if m["role"] == "user"] == ["Is node-2 running hot?", "Why are jobs pending?"]


def test_chat_page_asks_for_the_token_and_says_when_there_is_no_model(tmp_path: Path) -> None:
    chromium_or_skip()
    with gpudoc_serve(tmp_path, "http://127.0.0.1:9/v1", env={"GPUDOC_API_TOKEN": "page-token"}) as url, \
            browser_page() as page:
        page.goto(url + "/")
        page.wait_for_selector("#token-dialog[open]")
        page.fill("#token-input", "page-token")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#llm-status.pill-down")
        assert page.locator("#degraded-banner").is_visible()
        ask_on_page(page, "Which GPUs need an RMA?")
        assert page.locator(".answer-card.degraded .degraded-label").inner_text() == "Without the language model"
        assert page.locator(".answer").inner_text().strip()
        assert page.evaluate("sessionStorage.getItem('gpudoc.apiToken')") == "page-token"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-page-degraded.png"), full_page=True)
        assert page.errors == []


class _CountingServer:
    """An HTTP server on 127.0.0.1 that counts every request: the "remote" site an answer links to."""

    def __init__(self) -> None:
        import http.server

        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_chat_page_renders_no_link_image_or_html_from_an_answer(tmp_path: Path) -> None:
    chromium_or_skip()
    remote = _CountingServer()

    # tools as usual, then an answer full of markup a hostile text could talk a model into
    markup_policy = keyword_then_answer(
        f"**node-3 is drained.** [Re-authenticate to gpudoc]({remote.origin}/login) "
        f"![status]({remote.origin}/pixel.png?d=cluster) <img src=\"{remote.origin}/raw.png\"> "
        f"<a href=\"{remote.origin}/a\">click</a> www.evil.example\n\n| GPU | temp |\n|---|---|\n| 0 | 63.0 |\n")

    try:
        with StubVllmServer(policy=markup_policy) as llm_url, \
                gpudoc_serve(tmp_path, llm_url, "--scenario", "hostile-names") as url, browser_page() as page:
            page.goto(url + "/")
            page.wait_for_selector("#llm-status.pill-ok")
            ask_on_page(page, "Why is node-3 drained?")
            answer = page.locator(".answer").last
            text = answer.inner_text()
            assert answer.locator("a, img").count() == 0
            assert answer.locator("table").count() == 1 and answer.locator("strong").count() == 1
            assert "Re-authenticate to gpudoc" in text and f"({remote.origin}/login)" in text
            assert "[image: status]" in text and '<img src="' in text  # shown as text, never loaded
            page.wait_for_timeout(300)
            csp = httpx.get(url + "/").headers["content-security-policy"]
    finally:
        remote.close()
    assert remote.hits == []
    assert "img-src 'self' data:" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
