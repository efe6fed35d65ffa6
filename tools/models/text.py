"""Text that cluster users wrote, made safe to carry: the one boundary where it becomes data.

Why at the model boundary: job names (``sbatch -J``), user and account names, drain reasons,
alert names and XID messages are written by whoever can use the cluster, and they reach the
language model, the no-model answer and the chat page. Cleaning them where every source builds
its facts means no source (simulator, GPU Watchdog, Prometheus, Slurm) and no output can forget
to. What is removed: control, format and bidirectional-override characters; newlines (a
newline-led "SYSTEM:" line is the classic injection); markdown link and image syntax and HTML
tags (an image URL can carry data out when a page loads it); the ``//`` of bare URLs, so no
renderer auto-links them. What is kept: the words, so operators still recognise their job.
Length is capped so one field cannot crowd the model's context.

Three types, one cleaner:

- ``ClusterText``: free text written by users (job names, reasons, alert names), capped at
  ``MAX_CLUSTER_TEXT_CHARS``;
- ``ClusterName``: names and ids a site or a source chooses (node ids, hostnames, partitions,
  job ids, metric names); the same cleaning, so a hostile hostname or exporter label is as
  harmless as a hostile job name, capped at ``MAX_CLUSTER_NAME_CHARS``;
- ``ComposedText`` (``neutralise_markup``): for text gpudoc composes from those values (finding
  evidence, source notes, tool errors), which must stay one line without link, image or control
  characters however the cleaned pieces are put together; it keeps the length, gpudoc's own
  placeholders (``<default>``) and the addresses gpudoc names itself (``curl http://NODE:9400/metrics``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

#: the longest a single user-written field may be once cleaned
MAX_CLUSTER_TEXT_CHARS = 160
#: the longest a name or id from the cluster may be once cleaned (hostnames are at most 253)
MAX_CLUSTER_NAME_CHARS = 128

_WHITESPACE = re.compile(r"\s+")
#: ``![alt](url)`` and ``[text](url)``: keep the text, drop the target
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\s*\(([^)]*)\)")
#: reference-style ``[text][ref]`` and definitions ``[ref]: url``
_MARKDOWN_REF = re.compile(r"!?\[([^\]]*)\]\s*\[[^\]]*\]")
_MARKDOWN_DEF = re.compile(r"\[[^\]]*\]:\s*\S+")
#: autolinks ``<http://…>``, HTML tags and comments
_ANGLE = re.compile(r"<[^<>]{0,200}>")
#: bare URLs lose their scheme separator so no renderer auto-links them
_URL_SCHEME = re.compile(r"\b([a-z][a-z0-9+.-]{1,15})://", re.IGNORECASE)
#: what needs no cleaning at all: words, digits and harmless punctuation, single spaces (and no
#: ``://``, checked apart)
_PLAIN = re.compile(r"[\w.,:;@#%+=()'\"/*-]+(?: [\w.,:;@#%+=()'\"/*-]+)*")


def _visible(ch: str) -> str:
    """Whitespace (newlines included) becomes a space; control, format (bidi overrides, zero-width)
    and unassigned characters go; everything else stays."""
    if ch.isspace():
        return " "
    category = unicodedata.category(ch)
    if category[0] == "C":  # Cc control, Cf format (bidi, zero-width), Cs surrogate, Co, Cn
        return ""
    return ch


def neutralise_markup(value: str) -> str:
    """One line with no control characters and no markdown link or image.

    The words stay where they were; nothing is cut. Used directly for text gpudoc composes from
    cleaned values, and as the first step of ``clean_cluster_text``.
    """
    if _PLAIN.fullmatch(value) and "://" not in value:
        return value
    text = "".join(_visible(ch) for ch in value)
    text = _MARKDOWN_LINK.sub(lambda m: m.group(1), text)
    text = _MARKDOWN_REF.sub(lambda m: m.group(1), text)
    text = _MARKDOWN_DEF.sub("", text)
    text = text.replace("](", "] (").replace("![", "[")
    return _WHITESPACE.sub(" ", text).strip()


def clean_cluster_text(value: str, *, limit: int = MAX_CLUSTER_TEXT_CHARS) -> str:
    """User-written cluster text as one plain, bounded line that no renderer turns into a link,
    an image, an HTML element or a second instruction line."""
    if len(value) <= limit and _PLAIN.fullmatch(value) and "://" not in value:
        return value  # the common case (node-3, llama3-8b-sft, gpu:a100:8(S:0-1)) costs one regex match
    text = _ANGLE.sub("", "".join(_visible(ch) for ch in value))
    text = neutralise_markup(_URL_SCHEME.sub(r"\1: ", text))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def clean_cluster_name(value: str) -> str:
    """A name or id from the cluster, cleaned as user text and capped at ``MAX_CLUSTER_NAME_CHARS``."""
    return clean_cluster_text(value, limit=MAX_CLUSTER_NAME_CHARS)


def _coerce_str(value: object) -> object:
    # Sources hand over ints for numeric names now and then (a user called 1001); keep them.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


#: A string written by a cluster user. Use it for every such field of every fact model.
ClusterText = Annotated[str, BeforeValidator(_coerce_str), AfterValidator(clean_cluster_text)]

#: A name or id chosen by a site or reported by a source (node, host, partition, job id, metric).
ClusterName = Annotated[str, BeforeValidator(_coerce_str), AfterValidator(clean_cluster_name)]

#: Text gpudoc composes from cluster values (finding titles and evidence): one line, no markup.
ComposedText = Annotated[str, AfterValidator(neutralise_markup)]
