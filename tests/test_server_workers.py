"""``gpudoc serve --workers N`` as an operator runs it: worker processes on one port, threads in a
real PostgreSQL 15, and the refusals that keep SQLite to one process.

The model is the stub vLLM server (a TEST DOUBLE) in this test process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from gpudoc.cli import main
from gpudoc.graph.checkpoint import state_serializer
from tests.doubles.stub_vllm import StubVllmServer
from tests.served_gpudoc import gpudoc_serve, metric
from tests.services import free_port


def serve_refusal(monkeypatch: Any, capsys: Any, *args: str) -> tuple[int, str]:
    monkeypatch.delenv("GPUDOC_DB_URL", raising=False)
    monkeypatch.delenv("GPUDOC_WORKERS", raising=False)
    code = main(["serve", "--port", "0", *args])
    return code, capsys.readouterr().err


def test_several_workers_on_sqlite_are_refused_with_the_way_out(monkeypatch: Any, capsys: Any) -> None:
    code, err = serve_refusal(monkeypatch, capsys, "--workers", "2")
    assert code == 2
    assert "--workers 2 needs threads in PostgreSQL: set GPUDOC_DB_URL (or --db-url)" in err
    assert "Use --workers 1 with SQLite" in err


def test_an_unreachable_thread_database_stops_serve_before_it_listens(monkeypatch: Any, capsys: Any) -> None:
    code, err = serve_refusal(monkeypatch, capsys, "--workers", "2", "--db-url",
                              f"postgresql://gpudoc:pw@127.0.0.1:{free_port()}/threads")
    assert code == 2
    assert "cannot use the thread database postgresql://gpudoc@127.0.0.1:" in err
    assert "refused" in err and "pw@" not in err


def worker_pids(llm_url: str) -> list[int]:
    """The worker processes of the ``gpudoc serve`` started with ``llm_url`` (unique to a test)."""
    found = subprocess.run(["pgrep", "-f", f"serve --port 0 --llm-base-url {llm_url} "], capture_output=True,
                           text=True).stdout.split()
    assert len(found) == 1, found
    serve_pid = int(found[0])
    children = Path(f"/proc/{serve_pid}/task/{serve_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in _read(Path(f"/proc/{pid}/cmdline"))]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""  # the process is gone meanwhile


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (its own sockets, from /proc)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except FileNotFoundError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except (FileNotFoundError, ProcessLookupError):
        return set()  # the process is gone
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def listening_workers(llm_url: str, port: int, *, gone: int | None = None) -> list[int]:
    """The worker pids once two of them (without ``gone``) each listen on ``port`` (or what there is
    after 90 s: a replaced worker is a fresh interpreter that imports the whole stack, which takes
    tens of seconds on a busy 2-core machine)."""
    workers: list[int] = []
    for _ in range(900):
        workers = [pid for pid in worker_pids(llm_url) if pid != gone and listening_ports(pid) == {port}]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    return workers


def stored_questions(db_url: str, thread_id: str) -> list[str]:
    async def read() -> list[str]:
        async with AsyncPostgresSaver.from_conn_string(db_url, serde=state_serializer()) as saver:
            saved = await saver.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        messages: list[Any] = saved.checkpoint["channel_values"]["messages"] if saved else []
        return [m.content for m in messages if isinstance(m, HumanMessage)]

    return asyncio.run(read())


def test_two_workers_share_one_port_one_thread_and_one_metrics_page(tmp_path: Path, db_url: str) -> None:
    thread = f"thread-{uuid.uuid4().hex}"
    questions = [f"Is node-{n} running hot?" for n in range(4)]
    stub = StubVllmServer(token_delay=0.002)

    def ask(base_url: str, question: str) -> httpx.Response:
        return httpx.post(base_url + "/agent/invoke", headers={"X-Thread-Id": thread}, timeout=120,
                          json={"input": {"messages": [{"type": "human", "content": question}]}})

    with stub as llm_url:
        with gpudoc_serve(tmp_path, llm_url, "--workers", "2", "--db-url", db_url) as base_url:
            port = int(base_url.rsplit(":", 1)[1])
            workers = listening_workers(llm_url, port)
            assert len(workers) == 2  # a socket each: the kernel spreads connections over them
            responses = asyncio.run(_concurrently(lambda q: asyncio.to_thread(ask, base_url, q), questions))
            assert [r.status_code for r in responses] == [200] * len(questions)
            assert metric(base_url, "gpudoc_agent_turns_total", outcome="answered") == len(questions)
            in_flight = [line for line in httpx.get(base_url + "/metrics").text.splitlines()
                         if line.startswith("gpudoc_turns_in_flight")]
            assert in_flight == ["gpudoc_turns_in_flight 0.0"]  # one sum over the workers, not a series per pid
            os.kill(workers[0], signal.SIGKILL)  # a worker dies: it is replaced, on the same port
            replaced = listening_workers(llm_url, port, gone=workers[0])
            assert len(replaced) == 2 and workers[0] not in replaced
            assert all(httpx.get(base_url + "/healthz", timeout=10).status_code == 200 for _ in range(10))
        assert sorted(stored_questions(db_url, thread)) == sorted(questions)  # no turn lost to another
        with gpudoc_serve(tmp_path, llm_url, "--db-url", db_url) as base_url:  # restarted, one worker
            assert ask(base_url, "Which GPUs need an RMA?").status_code == 200
    assert sorted(stored_questions(db_url, thread)) == sorted([*questions, "Which GPUs need an RMA?"])
    last_request_questions = [m["content"] for m in stub.requests[-1]["messages"] if m.get("role") == "user"]
    assert sorted(last_request_questions) == sorted([*questions, "Which GPUs need an RMA?"])


async def _concurrently(call: Any, items: list[str]) -> list[Any]:
    return list(await asyncio.gather(*(call(item) for item in items)))
