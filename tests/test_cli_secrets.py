"""A refused setting is named in one line, and a secret in it is never echoed back.

The CLI quotes what it got for a bad value so the operator sees the typo; for a database URL that
carries a password (``postgresql+psycopg://user:password@…``, SQLAlchemy's spelling) or a token,
that quote would print the secret to the terminal, the CI log or the journal.
"""

from __future__ import annotations

import pytest

from gpudoc.cli import main
from gpudoc.config import Settings


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_refused_database_url_is_named_without_its_password(how, monkeypatch, capsys, tmp_path):
    url = "postgresql+psycopg://gpudoc:hunter2@db-host:5432/gpudoc"
    monkeypatch.chdir(tmp_path)
    args = ["serve", "--port", "0"]
    if how == "flag":
        args += ["--db-url", url]
    else:
        monkeypatch.setenv("GPUDOC_DB_URL", url)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "GPUDOC_DB_URL must be a postgresql:// URL" in err
    assert "hunter2" not in err


def test_a_refused_ordinary_value_is_still_quoted(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPUDOC_SIM_NODES", "eight")
    assert main(["diagnose"]) == 2
    assert "'eight'" in capsys.readouterr().err


def test_secrets_never_appear_in_the_settings_repr():
    settings = Settings(GPUDOC_API_TOKEN="tok-s3cret", LLM_API_KEY="key-s3cret",
                        GPUDOC_DB_URL="postgresql://u:pw-s3cret@h/db")
    assert "s3cret" not in repr(settings)
