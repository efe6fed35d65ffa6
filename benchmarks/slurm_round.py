"""What one agent round costs slurmctld, and how fast gpudoc finds slurmrestd's API version.

Why: an agent round runs its tools in parallel, and four of them read Slurm (get_slurm_status,
get_slurm_jobs, get_node_details, diagnose_cluster). The Slurm client shares one snapshot among
the callers of a moment; the baseline measured in the same run is the same round with a client
that fetches for every caller, as a per-call client would. Version choice pings every version
gpudoc reads at once; the baseline probes them one after another, newest first.

slurmrestd is either the real one (``--real``: a private Slurm 22.05 started here, as the tests
do) or a scripted one answering with the real 22.05 recording (``tests/fixtures/slurm``) after
``--latency-ms`` per request, like a head node across the network.

    .venv/bin/python benchmarks/slurm_round.py [--latency-ms 15] [--rounds 5] [--real]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from gpudoc.tools.cluster_tools import build_cluster_tools
from gpudoc.tools.models import SlurmSnapshot
from gpudoc.tools.sim.source import SimSource
from gpudoc.tools.sources.slurm_rest import SUPPORTED_VERSIONS, SlurmRestClient
from gpudoc.tools.sources.with_slurm import WithSlurmSource

RECORDING = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "slurm" / "v0.0.38"
ROUND = (("get_slurm_status", {}), ("get_slurm_jobs", {"state": "PENDING"}),
         ("get_node_details", {"node_id": "node-3"}), ("diagnose_cluster", {}))


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests per path on their way to slurmrestd (real or scripted)."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner, self.seen = inner, Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen[request.url.path] += 1
        return await self.inner.handle_async_request(request)


class ScriptedSlurmrestd(httpx.AsyncBaseTransport):
    """slurmrestd 22.05 as recorded: v0.0.38 only, each answer after ``latency_s``."""

    def __init__(self, latency_s: float):
        self.latency_s = latency_s
        self.bodies = {p.stem: p.read_bytes() for p in RECORDING.glob("*.json")}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.latency_s)
        parts = request.url.path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "v0.0.38" and parts[2] in self.bodies:
            return httpx.Response(200, content=self.bodies[parts[2]], headers={"content-type": "application/json"})
        return httpx.Response(404, text="Unable find requested URL.")


class UnsharedClient(SlurmRestClient):
    """The baseline: every caller fetches its own snapshot."""

    async def snapshot(self) -> SlurmSnapshot:
        return await self._fetch()


async def one_round(client: SlurmRestClient) -> float:
    source = WithSlurmSource(SimSource.create(seed=5, nodes=4, realtime=False), client)
    tools = {t.name: t for t in build_cluster_tools(source)}
    started = time.perf_counter()
    results = await asyncio.gather(*(tools[name].ainvoke(args) for name, args in ROUND))
    elapsed = time.perf_counter() - started
    assert all(isinstance(json.loads(r), dict) for r in results)
    return elapsed


async def sequential_version_probe(client: SlurmRestClient) -> str:
    headers = client._auth_headers()
    for version in SUPPORTED_VERSIONS:
        response = await client._http().get(f"/slurm/{version}/ping", headers=headers)
        if response.status_code != 404:
            return version
    raise RuntimeError("no version")


async def measure(url: str, token: str, transport: httpx.AsyncBaseTransport, rounds: int) -> None:
    def client(kind: type[SlurmRestClient], counter: CountingTransport) -> SlurmRestClient:
        """A fresh client per round, so no round reuses another's snapshot."""
        return kind(url, token=token, user="root", transport=counter, version="v0.0.38")

    rows = []
    for kind, label in ((UnsharedClient, "baseline: a fetch per caller"), (SlurmRestClient, "gpudoc: one shared fetch")):
        counter = CountingTransport(transport)
        times = [await one_round(client(kind, counter)) for _ in range(rounds)]
        rows.append((label, sum(counter.seen.values()) / rounds, sorted(times)[len(times) // 2]))
    print(f"one agent round ({', '.join(name for name, _ in ROUND)}), median of {rounds}:")
    print(f"{'':<32} {'slurmrestd requests':>20} {'wall ms':>9}")
    for label, requests, seconds in rows:
        print(f"{label:<32} {requests:>20.0f} {seconds * 1000:>9.1f}")
    (_, base_req, base_s), (_, ours_req, ours_s) = rows
    print(f"ratio (baseline / gpudoc): requests {base_req / ours_req:.1f}x, wall time {base_s / ours_s:.1f}x\n")

    counter = CountingTransport(transport)
    probe = SlurmRestClient(url, token=token, user="root", transport=counter)
    started = time.perf_counter()
    parallel = await probe._negotiated(probe._auth_headers())
    parallel_s = time.perf_counter() - started
    started = time.perf_counter()
    sequential = await sequential_version_probe(probe)
    sequential_s = time.perf_counter() - started
    assert parallel == sequential
    print(f"finding the API version ({parallel} of {len(SUPPORTED_VERSIONS)} gpudoc reads):")
    print(f"baseline: one version after another {sequential_s * 1000:8.1f} ms")
    print(f"gpudoc: all versions at once        {parallel_s * 1000:8.1f} ms   ratio {sequential_s / parallel_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=15.0, help="scripted slurmrestd's delay per request")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--real", action="store_true", help="start a real Slurm 22.05 here and measure against it")
    args = parser.parse_args()
    if not args.real:
        print(f"slurmrestd: scripted, the real 22.05 recording, {args.latency_ms:g} ms per request\n")
        asyncio.run(measure("http://slurm-head:6820", "token", ScriptedSlurmrestd(args.latency_ms / 1000), args.rounds))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.services.slurm import SlurmCluster, make_faulty

    root = Path(tempfile.mkdtemp(prefix="gpudoc-slurm-bench-"))
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        make_faulty(cluster)
        print(f"slurmrestd: real Slurm 22.05 on this machine ({cluster.rest_url})\n")
        asyncio.run(measure(cluster.rest_url, cluster.token(), httpx.AsyncHTTPTransport(), args.rounds))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
