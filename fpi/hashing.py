"""Stable uniform numbers from text, for splits and per-turn draws that must not depend on
row order, run or machine."""

from __future__ import annotations

import hashlib


def unit_hash(text: str, key: str) -> float:
    """A number in [0, 1) fixed by `text` and `key`; different keys give independent numbers
    (a keyed BLAKE2b hash: a salted CRC-32 is linear, so two salts of the same ids gave
    numbers locked together)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=key.encode()).digest()
    return int.from_bytes(digest, "big") / 2**64
