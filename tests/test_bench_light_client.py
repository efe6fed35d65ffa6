"""The scale benchmark's light load generator reads what httpx would: the first answer text and
the end of a stream, wherever the reads split them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from light_client import StreamScan  # noqa: E402

STREAM = (b'event: metadata\r\ndata: {"run_id": "1"}\r\n\r\n'
          b'event: data\r\ndata: {"content":"","thinking":"hm"}\r\n\r\n'
          b'event: data\r\ndata: {"content":"node-2 is hot"}\r\n\r\n'
          b'event: end\r\n\r\n')


def scan_in_pieces(data: bytes, size: int) -> StreamScan:
    scan = StreamScan(started=0.0)
    for at in range(0, len(data), size):
        scan.feed(data[at:at + size])
    return scan


def test_every_split_finds_the_first_text_and_the_end() -> None:
    for size in range(1, len(STREAM) + 1):
        scan = scan_in_pieces(STREAM, size)
        assert scan.first_token_s is not None, size
        assert scan.ended and not scan.failed, size


def test_empty_content_is_not_a_first_token() -> None:
    first_text = STREAM.index(b'{"content":"node-2')
    for size in range(1, first_text):
        scan = scan_in_pieces(STREAM[:first_text], size)
        assert scan.first_token_s is None, size
        assert not scan.ended


def test_an_error_event_fails_the_stream() -> None:
    scan = scan_in_pieces(STREAM.replace(b"event: end", b"event: error\r\ndata: {}\r\n\r\nevent: end"), 7)
    assert scan.failed and scan.ended
