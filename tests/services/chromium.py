"""Debian's Chromium driven by Playwright, headless, for the browser tests.

Why Debian's binary rather than Playwright's download: CI installs ``chromium`` with the other
real services (``.ci/run``), and nothing is fetched at test time. Missing: skip on a developer
machine, fail when ``GPUDOC_REQUIRE_BROWSER`` is set (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("GPUDOC_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing and GPUDOC_REQUIRE_BROWSER is set: apt-get install chromium")
    pytest.skip(f"the browser test drives Debian's Chromium at {CHROMIUM}; install it with `apt-get install chromium`")


@contextmanager
def browser_page(*, width: int = 1180, height: int = 1300) -> Iterator[Any]:
    """A page of a fresh headless Chromium; ``page.errors`` collects uncaught page errors."""
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.errors = errors
            yield page
        finally:
            browser.close()
