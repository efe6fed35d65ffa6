"""The base every cluster fact derives from.

Why strict: a source that sends a field we do not model must be mapped explicitly in that
source, not carried along silently; ``extra="forbid"`` makes such drift fail in the tests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for all cluster facts: immutable-by-convention, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=False)
