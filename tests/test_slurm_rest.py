"""``SlurmRestClient``: version choice, authentication, retries and every failure as one clear
error. A scripted slurmrestd (``httpx.MockTransport``) answers with the fixtures of the versions
it "offers" and 404 for the others, as slurmrestd does; "down" is a real closed port."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gpudoc.tools.models.cluster import SlurmSummary
from gpudoc.tools.sources.base import SourceError, SourceProtocolError, SourceUnavailableError
from gpudoc.tools.sources.slurm_rest import SUPPORTED_VERSIONS, SlurmRestClient, SlurmRestError
from tests.doubles.fake_slurmrestd import TOKEN, URL, FakeSlurmrestd, jwt
from tests.slurm_fixtures import RECORDED, comparable_snapshot, payload, snapshot

# ---- versions ---------------------------------------------------------------------------------------


async def test_picks_the_newest_version_the_server_offers():
    server = FakeSlurmrestd(offers=("v0.0.40", "v0.0.43", "v0.0.41"))
    client = server.client()
    snap = await client.snapshot()
    assert client.version == "v0.0.43" and snap.scheduler.api == "slurmrestd v0.0.43"
    assert comparable_snapshot(snap) == comparable_snapshot(snapshot(RECORDED))
    # one probe per supported version, all at once; then only the chosen version's lists
    assert all(server.seen[f"/slurm/{v}/ping"] >= 1 for v in SUPPORTED_VERSIONS)
    assert server.seen["/slurm/v0.0.43/nodes"] == 1 and server.seen["/slurm/v0.0.40/nodes"] == 0


async def test_slurm_22_05_is_read_through_v0_0_38():
    client = FakeSlurmrestd(offers=("v0.0.36", "v0.0.37", "v0.0.38")).client()
    snap = await client.snapshot()
    assert client.version == "v0.0.38" and len(snap.jobs) == 10


@pytest.mark.parametrize("offers, chosen, release", [
    (("v0.0.37", "v0.0.38", "v0.0.39"), "v0.0.39", "23.02"),  # what slurmrestd 23.02 loads
    (("v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44"), "v0.0.44", "25.11"),  # 25.11
])
async def test_the_oldest_and_newest_versions_gpudoc_claims_read_like_the_recording(offers, chosen, release):
    client = FakeSlurmrestd(offers=offers).client()
    snap = await client.snapshot()
    assert client.version == chosen and snap.scheduler.slurm_version.startswith(release)
    assert snap.nodes == snapshot(RECORDED).nodes and snap.jobs == snapshot(chosen).jobs
    assert snap.queue == snapshot(RECORDED).queue and snap.notes == []


async def test_no_version_gpudoc_reads_is_a_clear_error():
    with pytest.raises(SlurmRestError, match=r"offers none of the OpenAPI versions gpudoc reads \(v0.0.38..v0.0.44\)"):
        await FakeSlurmrestd(offers=("v0.0.36",)).client().snapshot()


async def test_a_pinned_version_the_server_lacks_says_what_to_unset():
    with pytest.raises(SlurmRestError, match="does not serve /slurm/v0.0.42.*SLURMRESTD_VERSION"):
        await FakeSlurmrestd(offers=("v0.0.38",)).client(version="0.0.42").snapshot()
    with pytest.raises(SourceError, match="not one gpudoc reads"):
        SlurmRestClient(URL, version="v0.0.36")


async def test_an_upgraded_server_is_asked_again_once():
    server = FakeSlurmrestd(offers=("v0.0.41",))
    client = server.client(max_age_s=0)
    await client.snapshot()
    server.offers = ("v0.0.42", "v0.0.43")  # slurmrestd restarted with a newer Slurm
    snap = await client.snapshot()
    assert client.version == "v0.0.43" and len(snap.nodes) == 4


# ---- authentication ------------------------------------------------------------------------------


async def test_sends_the_token_and_the_user_it_names():
    server = FakeSlurmrestd(offers=(RECORDED,))
    await server.client().snapshot()
    assert {h["x-slurm-user-token"] for h in server.headers} == {TOKEN}
    assert {h["x-slurm-user-name"] for h in server.headers} == {"alice"}  # from the token's "sun" claim
    server.headers.clear()
    await server.client(user="svc-gpudoc").snapshot()
    assert {h["x-slurm-user-name"] for h in server.headers} == {"svc-gpudoc"}


async def test_token_file_is_read_on_every_fetch(tmp_path):
    token_file = tmp_path / "slurm.jwt"
    token_file.write_text(f"SLURM_JWT={jwt('bob')}\n")  # as `scontrol token` prints it
    server = FakeSlurmrestd(offers=(RECORDED,))
    client = server.client(token=None, token_file=token_file, max_age_s=0)
    await client.snapshot()
    assert server.headers[-1]["x-slurm-user-name"] == "bob"
    token_file.write_text(jwt("carol"))  # rotated by cron
    await client.snapshot()
    assert server.headers[-1]["x-slurm-user-token"] == jwt("carol")


async def test_unreadable_token_file_names_the_file(tmp_path):
    client = FakeSlurmrestd(offers=(RECORDED,)).client(token=None, token_file=tmp_path / "missing.jwt")
    with pytest.raises(SlurmRestError, match="missing.jwt.*SLURM_JWT_FILE"):
        await client.snapshot()


async def test_401_says_which_variables_to_set():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {f"/slurm/{v}/ping": (lambda r: httpx.Response(401, text="Authentication failure"))
                       for v in SUPPORTED_VERSIONS}
    with pytest.raises(SlurmRestError) as caught:
        await server.client(token=None).snapshot()
    message = str(caught.value)
    assert "HTTP 401: Authentication failure" in message and "no token (SLURM_JWT is not set)" in message
    assert "scontrol token" in message and "SLURM_USER" in message


async def test_403_names_the_user():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {"/slurm/v0.0.38/nodes": lambda r: httpx.Response(403, json={"errors": [{"description": "Access denied"}]})}
    with pytest.raises(SlurmRestError, match="forbids user alice GET /slurm/v0.0.38/nodes.*Access denied"):
        await server.client().snapshot()


# ---- failures ---------------------------------------------------------------------------------------


async def test_slurms_own_500_is_reported_at_once_not_retried():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {"/slurm/v0.0.38/nodes": lambda r: httpx.Response(
        500, json={"errors": [{"error": "Unspecified error", "errno": -1}], "nodes": []})}
    with pytest.raises(SourceUnavailableError, match="HTTP 500: Unspecified error.*token"):
        await server.client().snapshot()
    assert server.seen["/slurm/v0.0.38/nodes"] == 1


async def test_a_bare_503_is_retried():
    server = FakeSlurmrestd(offers=(RECORDED,))
    answers = iter([httpx.Response(503, text="proxy restarting"), httpx.Response(200, json=payload(RECORDED, "nodes"))])
    server.override = {"/slurm/v0.0.38/nodes": lambda r: next(answers)}
    snap = await server.client().snapshot()
    assert len(snap.nodes) == 4 and server.seen["/slurm/v0.0.38/nodes"] == 2


async def test_malformed_json_is_a_protocol_error():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {"/slurm/v0.0.38/nodes": lambda r: httpx.Response(200, text="<html>login</html>")}
    with pytest.raises(SourceProtocolError, match="malformed JSON for GET /slurm/v0.0.38/nodes.*<html>"):
        await server.client().snapshot()


async def test_a_failing_optional_list_leaves_a_note_and_the_rest():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {"/slurm/v0.0.38/diag": lambda r: httpx.Response(500, json={"errors": [{"description": "busy"}]})}
    snap = await server.client().snapshot()
    assert len(snap.jobs) == 10 and snap.scheduler.responding is True and snap.scheduler.jobs_submitted is None
    assert any("scheduler statistics unavailable" in note and "busy" in note for note in snap.notes)


async def test_a_failing_job_list_leaves_the_nodes_and_an_unknown_queue():
    # what slurmrestd 25.11 answers when slurm_load_jobs() fails: the required list, empty, and an error
    server = FakeSlurmrestd(offers=("v0.0.44",))
    failed = {**payload("v0.0.44", "jobs"), "jobs": [],
              "errors": [{"description": "Unable to query jobs", "error_number": 1007, "error": "Socket timed out",
                          "source": "slurm_load_jobs()"}]}
    server.override = {"/slurm/v0.0.44/jobs": lambda r: httpx.Response(500, json=failed)}
    snap = await server.client().snapshot()
    assert snap.jobs is None and snap.nodes == snapshot("v0.0.44").nodes
    assert any("jobs unavailable" in note and "Unable to query jobs" in note for note in snap.notes)
    assert set(snap.queue.model_dump().values()) == {None}  # unknown, not "0 pending"
    assert SlurmSummary.of(snap).jobs_pending is None


async def test_unreachable_slurmrestd_says_what_to_check():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SlurmRestClient(f"http://127.0.0.1:{port}", token=TOKEN, retries=1, backoff_s=0)
    with pytest.raises(SourceUnavailableError, match="Could not reach slurmrestd.*connection refused.*SLURMRESTD_URL"):
        await client.snapshot()


def test_a_url_without_scheme_is_refused():
    with pytest.raises(SourceError, match="SLURMRESTD_URL must start with http"):
        SlurmRestClient("slurm-head:6820")


# ---- one fetch for many callers -----------------------------------------------------------------


async def test_concurrent_callers_share_one_fetch():
    server = FakeSlurmrestd(offers=(RECORDED,))
    client = server.client()
    snaps = await asyncio.gather(*(client.snapshot() for _ in range(8)))
    assert all(s is snaps[0] for s in snaps)
    assert server.seen["/slurm/v0.0.38/nodes"] == 1 and server.seen["/slurm/v0.0.38/jobs"] == 1
    await client.snapshot()  # within max_age_s: no new request
    assert server.seen["/slurm/v0.0.38/nodes"] == 1


async def test_a_cancelled_caller_does_not_cancel_the_others():
    server = FakeSlurmrestd(offers=(RECORDED,))
    client = server.client()
    first = asyncio.ensure_future(client.snapshot())
    second = asyncio.ensure_future(client.snapshot())
    await asyncio.sleep(0)
    first.cancel()
    snap = await second
    assert len(snap.nodes) == 4


async def test_a_failure_is_not_kept():
    server = FakeSlurmrestd(offers=(RECORDED,))
    server.override = {"/slurm/v0.0.38/nodes": lambda r: httpx.Response(502, text="bad gateway")}
    client = server.client()
    with pytest.raises(SourceUnavailableError):
        await client.snapshot()
    server.override = {}
    assert len((await client.snapshot()).nodes) == 4
