"""``SlurmCliClient`` picks the JSON each Slurm version's commands can print and falls back to
22.05's text forms. The real 22.05 commands run in ``test_slurm_real``; here scripted commands
(TEST DOUBLES: shell scripts on a private PATH that print the recorded or spec-built answers)
stand in for 25.05's, which no machine here runs, and for failures."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gpudoc.tools.sources.base import SourceUnavailableError
from gpudoc.tools.sources.slurm_cli import SlurmCliClient, SlurmCliError
from tests.slurm_fixtures import FIXTURES, RECORDED, comparable_snapshot, snapshot


def fake_commands(bin_dir: Path, log: Path, scripts: dict[str, str]) -> dict[str, str]:
    """Write each command as a script that logs its arguments, then runs ``body``."""
    bin_dir.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def slurm_25_05(tmp_path: Path) -> tuple[dict[str, str], Path]:
    answers = FIXTURES / "v0.0.43"
    log = tmp_path / "calls.log"
    env = fake_commands(tmp_path / "bin", log, {
        "scontrol": f'''case "$*" in
  "show node --json") cat {answers}/nodes.json ;;
  "show partition --json") cat {answers}/partitions.json ;;
  "ping --json") cat {answers}/ping.json ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac''',
        "squeue": f"cat {answers}/jobs.json",
        "sdiag": f"cat {answers}/diag.json",
        "sinfo": "echo 'sinfo must not be needed' >&2; exit 3",
    })
    return env, log


def slurm_22_05(tmp_path: Path) -> tuple[dict[str, str], Path]:
    answers = FIXTURES / RECORDED
    log = tmp_path / "calls.log"
    no_json = """for a in "$@"; do [ "$a" = --json ] && { echo "$0: unrecognized option '--json'" >&2; exit 1; }; done"""
    env = fake_commands(tmp_path / "bin", log, {
        "scontrol": f'''{no_json}
case "$*" in
  "-o show partition") cat {answers}/scontrol-show-partition.txt ;;
  "ping") cat {answers}/scontrol-ping.txt ;;
esac''',
        "sdiag": f"{no_json}\ncat {answers}/sdiag.txt",
        "sinfo": f"cat {answers}/sinfo.json",
        "squeue": f"cat {answers}/squeue.json",
    })
    return env, log


async def test_newer_slurm_is_read_through_its_json(tmp_path):
    env, log = slurm_25_05(tmp_path)
    snap = await SlurmCliClient(env=env).snapshot()
    assert comparable_snapshot(snap) == comparable_snapshot(snapshot(RECORDED))
    assert snap.scheduler.slurm_version == "25.05.3" and snap.notes == []
    assert "sinfo" not in log.read_text()


async def test_slurm_22_05_falls_back_to_sinfo_and_text_once(tmp_path):
    env, log = slurm_22_05(tmp_path)
    client = SlurmCliClient(env=env, max_age_s=0)
    first = await client.snapshot()
    assert first.nodes == snapshot(RECORDED).nodes and first.partitions == snapshot(RECORDED).partitions
    assert first.scheduler.controller == "vm" and first.scheduler.jobs_submitted is not None
    calls_after_first = log.read_text().count("--json")
    await client.snapshot()
    # the --json forms 22.05 lacks were tried once; the second snapshot goes straight to the fallbacks
    assert log.read_text().count("--json") - calls_after_first == 2  # squeue --json and sinfo --json only


async def test_a_missing_command_says_what_to_install(tmp_path):
    with pytest.raises(SlurmCliError, match="`scontrol` is not on this host's PATH.*slurm-client.*--slurm rest"):
        await SlurmCliClient(env={"PATH": str(tmp_path)}).snapshot()


async def test_a_hanging_command_times_out(tmp_path):
    env, _ = slurm_22_05(tmp_path)
    (tmp_path / "bin" / "sinfo").write_text("#!/bin/sh\nexec sleep 30\n")
    with pytest.raises(SourceUnavailableError, match="`sinfo --json` did not finish within 0.5s.*SLURM_TIMEOUT_S"):
        await SlurmCliClient(env=env, timeout_s=0.5).snapshot()


async def test_a_failing_optional_command_leaves_a_note(tmp_path):
    env, _ = slurm_22_05(tmp_path)
    (tmp_path / "bin" / "squeue").write_text(
        "#!/bin/sh\necho 'squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation' >&2\nexit 1\n")
    snap = await SlurmCliClient(env=env).snapshot()
    assert snap.jobs is None and len(snap.nodes) == 4
    assert any("squeue --json" in note and "Socket timed out" in note for note in snap.notes)
