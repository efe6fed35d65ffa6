"""The deployment files in ``infra/``: what a replicated deployment must get right, checked where no
container runtime or cluster is at hand (the files are parsed, not run).

- the image holds every package the project installs (a missing folder fails ``pip install .``);
- the replicated deployments (compose, Kubernetes) run two replicas on PostgreSQL, require the API
  token, and probe ``/healthz`` and ``/readyz``;
- the balancer passes streams through unbuffered.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[1] / "infra"
REPO = INFRA.parent


def test_the_image_copies_every_package_folder_the_project_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {path.split("/")[0] for path in project["tool"]["setuptools"]["package-dir"].values()}
    copied = set(re.findall(r"^COPY (\S+) \./", (INFRA / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert folders <= copied, f"infra/Dockerfile does not copy {sorted(folders - copied)}"


def test_compose_runs_two_replicas_on_postgres_behind_the_balancer_with_the_token_required() -> None:
    compose = yaml.safe_load((INFRA / "replicas" / "compose.yml").read_text())
    services = compose["services"]
    gpudoc = services["gpudoc"]
    assert gpudoc["deploy"]["replicas"] == 2 and "ports" not in gpudoc  # only the balancer is published
    environment = gpudoc["environment"]
    assert environment["GPUDOC_DB_URL"].startswith("postgresql://gpudoc:${GPUDOC_DB_PASSWORD}@postgres:5432/")
    assert re.fullmatch(r"\$\{GPUDOC_API_TOKEN:\?[^}]+\}", environment["GPUDOC_API_TOKEN"])  # unset: refused
    assert int(re.search(r"\d+", environment["GPUDOC_WORKERS"]).group()) >= 2
    assert gpudoc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["balancer"]["ports"] == ["8080:8080"]
    assert "/healthz" in " ".join(gpudoc["healthcheck"]["test"])
    assert int(gpudoc["stop_grace_period"].rstrip("s")) > 30  # GPUDOC_SHUTDOWN_GRACE_S: answers in flight finish


def test_the_balancer_streams_unbuffered_and_follows_the_replicas() -> None:
    conf = (INFRA / "replicas" / "nginx.conf").read_text()
    assert "proxy_buffering off;" in conf and "proxy_http_version 1.1;" in conf
    assert "resolver 127.0.0.11" in conf and "set $gpudoc http://gpudoc:8080;" in conf
    assert int(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1)) >= 300


def kubernetes_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((INFRA / "kubernetes").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_kubernetes_runs_two_replicas_with_workers_the_secrets_and_the_probes() -> None:
    documents = kubernetes_documents()
    deployment = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "gpudoc")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[:2] == ["gpudoc", "serve"] and int(args[args.index("--workers") + 1]) >= 2
    env = {e["name"]: e for e in container["env"]}
    for name, key in (("GPUDOC_API_TOKEN", "api-token"), ("GPUDOC_DB_URL", "db-url")):
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": "gpudoc", "key": key}  # not optional: no secret, no pod
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["timeoutSeconds"] >= 4  # /readyz waits up to 3 s per check
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30  # the shutdown grace
    database = next(d for d in documents if d["kind"] == "StatefulSet")
    assert database["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:15")
    assert any(d["kind"] == "PodDisruptionBudget" for d in documents)
    assert not any(d["kind"] == "Secret" for d in documents)  # secrets are made by the operator


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((INFRA / "kubernetes" / "kustomization.yaml").read_text())
    manifests = {p.name for p in (INFRA / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_kubectl_renders_the_kustomization() -> None:
    try:
        rendered = subprocess.run(["kubectl", "kustomize", str(INFRA / "kubernetes")], capture_output=True,
                                  text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("kubectl is not installed")
    assert rendered.returncode == 0, rendered.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
    assert sorted(kinds) == sorted(["Namespace", "Service", "Service", "StatefulSet", "Deployment",
                                    "PodDisruptionBudget"])
