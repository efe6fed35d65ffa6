"""Real Prometheus and Alertmanager for the tests, and ``gpudoc sim`` as the cluster they watch.

Each daemon runs in the foreground of its own process, on free loopback ports, in a temp dir,
and is stopped by pid. The simulator writes its scrape targets and its past hour
(``gpudoc sim --prometheus-dir``); Prometheus starts on that hour, backfilled with
``promtool tsdb create-blocks-from openmetrics``, then scrapes the simulator's per-node exporter
pages with gpudoc's alert rules loaded and sends alerts to the Alertmanager.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import yaml

from tests.services import free_port, require_binary

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "prometheus" / "gpudoc-rules.yml"


@dataclass
class Daemon:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class SimProcess(Daemon):
    anchor: datetime
    feed: Path


def _wait_ready(url: str, daemon: Daemon, what: str, timeout_s: float = 60.0, auth: httpx.Auth | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {daemon.process.returncode}: {daemon.log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2, auth=auth, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    daemon.stop()
    raise RuntimeError(f"{what} did not become ready at {url}: {daemon.log.read_text()[-2000:]}")


def start_sim(workdir: Path, *args: str, history_minutes: int = 70, history_step: int = 60) -> SimProcess:
    """``gpudoc sim`` on a free port, writing its Prometheus feed into ``workdir/feed``."""
    feed = workdir / "feed"
    log = workdir / "sim.log"
    command = [sys.executable, "-m", "gpudoc", "sim", "--port", "0", "--prometheus-dir", str(feed),
               "--history-minutes", str(history_minutes), "--history-step", str(history_step), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=out, cwd=REPO)
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        line = process.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"gpudoc sim exited: {''.join(lines)} {log.read_text()[-2000:]}")
        lines.append(line)
        match = re.search(r"on (http://127\.0\.0\.1:\d+) .*clock anchored at (\S+);", line)
        if match:
            break
    process.stdout.close()
    return SimProcess(url=match[1], process=process, log=log, anchor=datetime.fromisoformat(match[2]), feed=feed)


def start_alertmanager(workdir: Path) -> Daemon:
    binary = require_binary("prometheus-alertmanager", package="prometheus-alertmanager",
                            candidates=("/usr/bin/alertmanager",))
    port = free_port()
    config = workdir / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h"},
        "receivers": [{"name": "null"}],
    }))
    log = workdir / "alertmanager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=out, stderr=subprocess.STDOUT,
        )
    daemon = Daemon(url=f"http://127.0.0.1:{port}", process=process, log=log)
    _wait_ready(f"{daemon.url}/-/ready", daemon, "Alertmanager")
    return daemon


def start_prometheus(workdir: Path, feed: Path | None, *, alertmanager: str | None = None, interval: str = "2s",
                     web_config: dict[str, object] | None = None, auth: httpx.Auth | None = None) -> Daemon:
    """Prometheus with gpudoc's rules, scraping the simulator's targets (none without ``feed``),
    starting on its history. ``web_config`` (TLS, basic auth) is Prometheus's ``--web.config.file``."""
    binary = require_binary("prometheus", package="prometheus")
    promtool = require_binary("promtool", package="prometheus")
    data = workdir / "prom-data"
    history = feed / "history.om" if feed is not None else None
    if history is not None and history.exists():
        subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(history), str(data)],
                       check=True, capture_output=True)
    config: dict[str, object] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(RULES)],
        "scrape_configs": [] if feed is None else [
            {"job_name": "dcgm", "file_sd_configs": [{"files": [str(feed / "dcgm-targets.json")]}]},
            {"job_name": "node", "file_sd_configs": [{"files": [str(feed / "node-targets.json")]}]},
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.split("://", 1)[1]]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    flags = [f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{(port := free_port())}"]
    if web_config is not None:
        (workdir / "web.yml").write_text(yaml.safe_dump(web_config))
        flags.append(f"--web.config.file={workdir / 'web.yml'}")
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary), *flags], stdout=out, stderr=subprocess.STDOUT)
    scheme = "https" if web_config and "tls_server_config" in web_config else "http"
    daemon = Daemon(url=f"{scheme}://127.0.0.1:{port}", process=process, log=log)
    _wait_ready(f"{daemon.url}/-/ready", daemon, "Prometheus", auth=auth)
    return daemon


def wait_for_scrapes(prometheus_url: str, targets: int, rounds: int = 2, interval_s: float = 2.0,
                     timeout_s: float = 60.0, auth: httpx.Auth | None = None) -> None:
    """Until every target has been scraped, then ``rounds`` intervals more (live series follow the history)."""
    deadline = time.monotonic() + timeout_s
    scraped = 0
    while time.monotonic() < deadline:
        active = httpx.get(f"{prometheus_url}/api/v1/targets", auth=auth).json()["data"]["activeTargets"]
        scraped = sum(1 for t in active if not t["lastScrape"].startswith("0001-"))
        if scraped >= targets:
            time.sleep(rounds * interval_s)
            return
        time.sleep(0.3)
    raise RuntimeError(f"only {scraped} of {targets} targets were scraped within {timeout_s:.0f} s")
