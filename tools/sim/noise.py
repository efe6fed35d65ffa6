"""Seeded, stateless noise: any sample of any GPU at any time, computed on demand.

Why a table plus integer hashing instead of a random generator: a generator would have to be
replayed from the start to reach a given time bucket. Hashing (seed, series key, bucket,
channel) into a seeded table gives the same value for the same inputs in any order, in any
process, so history windows can be computed lazily and still be byte-identical.
"""

from __future__ import annotations

import random

_TABLE_BITS = 16
_MASK = (1 << _TABLE_BITS) - 1
_GOLDEN = 0x9E3779B1
_MIX = 0x85EBCA77


class Noise:
    """Deterministic pseudo-random values in [-1, 1] keyed by integers."""

    def __init__(self, seed: int):
        rng = random.Random(f"gpudoc-sim-noise:{seed}")
        self._table = [rng.uniform(-1.0, 1.0) for _ in range(1 << _TABLE_BITS)]

    def at(self, key: int, bucket: int, channel: int = 0) -> float:
        """Noise for series ``key`` at time ``bucket`` on ``channel`` (a small integer per signal)."""
        h = (key * _GOLDEN) ^ (bucket * _MIX) ^ (channel * 0x27D4EB2F)
        h ^= h >> 15
        return self._table[h & _MASK]

    def channels(self, key: int, buckets: list[int], count: int) -> list[list[float]]:
        """``count`` independent noise lists over many buckets (the hot loop of history generation)."""
        table, base = self._table, key * _GOLDEN
        hashes = [h ^ (h >> 15) for h in (base ^ (b * _MIX) for b in buckets)]
        return [[table[(h + c * 0x2F0B3) & _MASK] for h in hashes] for c in range(count)]


def series_key(node: int, gpu: int) -> int:
    """The integer identity of one GPU's series for ``Noise``."""
    return node * 64 + gpu + 1
