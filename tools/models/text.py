"""Text that cluster users wrote, made safe to carry: the one boundary where it becomes data.

Why at the model boundary: job names (``sbatch -J``), user and account names, drain reasons,
alert names and XID messages are written by whoever can use the cluster, and they reach the
language model, the no-model answer and the chat page. Cleaning them where every source builds
its facts means no source (simulator, GPU Watchdog, Prometheus, Slurm) and no output can forget
to. What is removed: control, format and bidirectional-override characters; newlines (a
newline-led "SYSTEM:" line is the classic injection); markdown link and image syntax (an image
URL can carry data out when a page loads it). What is kept: the words, so operators still
recognise their job. Length is capped so one field cannot crowd the model's context.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

#: the longest a single user-written field may be once cleaned
MAX_CLUSTER_TEXT_CHARS = 160

_WHITESPACE = re.compile(r"\s+")
#: ``![alt](url)`` and ``[text](url)``: keep the text, drop the target
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\s*\(([^)]*)\)")
#: reference-style ``[text][ref]`` and definitions ``[ref]: url``
_MARKDOWN_REF = re.compile(r"!?\[([^\]]*)\]\s*\[[^\]]*\]")
_MARKDOWN_DEF = re.compile(r"\[[^\]]*\]:\s*\S+")
#: autolinks ``<http://…>`` and HTML tags
_ANGLE = re.compile(r"<[^<>]{0,200}>")
#: bare URLs lose their scheme separator so no renderer auto-links them
_URL_SCHEME = re.compile(r"\b([a-z][a-z0-9+.-]{1,15})://", re.IGNORECASE)


def _visible(ch: str) -> str:
    """Whitespace (newlines included) becomes a space; control, format (bidi overrides, zero-width)
    and unassigned characters go; everything else stays."""
    if ch.isspace():
        return " "
    category = unicodedata.category(ch)
    if category[0] == "C":  # Cc control, Cf format (bidi, zero-width), Cs surrogate, Co, Cn
        return ""
    return ch


def clean_cluster_text(value: str, *, limit: int = MAX_CLUSTER_TEXT_CHARS) -> str:
    """User-written cluster text as one plain, bounded line that no renderer turns into a link,
    an image or a second instruction line."""
    text = "".join(_visible(ch) for ch in value)
    text = _MARKDOWN_LINK.sub(lambda m: m.group(1), text)
    text = _MARKDOWN_REF.sub(lambda m: m.group(1), text)
    text = _MARKDOWN_DEF.sub("", text)
    text = _ANGLE.sub("", text)
    text = _URL_SCHEME.sub(r"\1: ", text)
    text = text.replace("](", "] (").replace("![", "[")
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _coerce_str(value: object) -> object:
    # Sources hand over ints for numeric names now and then (a user called 1001); keep them.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


#: A string written by a cluster user. Use it for every such field of every fact model.
ClusterText = Annotated[str, BeforeValidator(_coerce_str), AfterValidator(clean_cluster_text)]
