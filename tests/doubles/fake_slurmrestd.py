"""A scripted slurmrestd: a TEST DOUBLE (an ``httpx.MockTransport`` handler), not Slurm.

It answers ``/slurm/<version>/<endpoint>`` with the fixtures (the real v0.0.38 recording, or the
spec-built newer versions) for the versions it "offers", and 404 with slurmrestd's own text for
the others; ``override`` scripts failures per path. Real Slurm is ``tests/services/slurm.py``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable

import httpx

from gpudoc.tools.sources.slurm_rest import SlurmRestClient
from tests.slurm_fixtures import BUILT, RECORDED, payload

URL = "http://slurm-head.test:6820"


def jwt(user: str) -> str:
    """A token shaped like Slurm's (only the claims matter here; slurmctld checks the signature)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'exp': 1999999999, 'iat': 1, 'sun': user})}.c2ln"


TOKEN = jwt("alice")


class FakeSlurmrestd:
    """Serves ``/slurm/<version>/<endpoint>`` for the versions it offers (content: ``content_of``)."""

    def __init__(self, offers: tuple[str, ...], content_of: Callable[[str], str] | None = None):
        self.offers = offers
        self.content_of = content_of or (lambda version: version if version in (RECORDED, *BUILT) else BUILT[-1])
        self.seen: Counter[str] = Counter()
        self.headers: list[httpx.Headers] = []
        self.override: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen[path] += 1
        self.headers.append(request.headers)
        if path in self.override:
            return self.override[path](request)
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "slurm" or parts[1] not in self.offers:
            return httpx.Response(404, text="Unable find requested URL. Please view /openapi/v3 for API reference.")
        return httpx.Response(200, json=payload(self.content_of(parts[1]), parts[2]))

    def client(self, **options) -> SlurmRestClient:
        options.setdefault("token", TOKEN)
        return SlurmRestClient(URL, backoff_s=0, transport=httpx.MockTransport(self), **options)
