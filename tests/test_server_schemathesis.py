"""The documented API against schemathesis: no 5xx, and every answer as the OpenAPI document says.

schemathesis (its command line, as an operator would run it) generates requests from
``/openapi.json``, valid and invalid, against a real ``gpudoc serve`` with the token on, the stub
vLLM server (a TEST DOUBLE) as its model and the ``hostile-names`` cluster. Bounded: a few hundred
cases, deterministic generation, one worker. Checks: no server error, every status, content type,
header and body as documented. (Whether the schema is as strict as the validation is not checked:
LangServe's message schemas accept shapes the agent refuses, by design of LangChain's types.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doubles.stub_vllm import StubVllmServer
from tests.served_gpudoc import gpudoc_serve

SCHEMATHESIS = Path(sys.executable).parent / "st"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance")
TOKEN = "schemathesis-token"


def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: install the test extra (pip install -e '.[test]')")
    with StubVllmServer() as llm_url, gpudoc_serve(tmp_path, llm_url, "--nodes", "4", "--scenario", "hostile-names",
                                                   env={"GPUDOC_API_TOKEN": TOKEN}) as url:
        result = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--header", f"Authorization: Bearer {TOKEN}",
             "--checks", CHECKS, "--phases", "examples,fuzzing", "--max-examples", "12",
             "--generation-deterministic", "--workers", "1", "--request-timeout", "30", "--no-color",
             "--output-truncate", "true"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    server_log = (tmp_path / "serve.log").read_text()
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and int(generated.group(1)) >= 150 and generated.group(1) == generated.group(2), summary
    assert "Traceback" not in server_log and "Exception in ASGI application" not in server_log
