"""Independent, named random streams derived from one seed.

Each concern draws from its own stream (``streams.rng("crm.contacts")``), so adding a draw in
one module never shifts the numbers of another, and the same seed always gives the same data.
Stream names are hashed with CRC-32, not Python's salted ``hash``.
"""

from __future__ import annotations

import zlib

import numpy as np


class Streams:
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def rng(self, name: str, *parts: int) -> np.random.Generator:
        key = [self.seed & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8")), *map(int, parts)]
        return np.random.default_rng(np.random.SeedSequence(key))
