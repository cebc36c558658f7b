"""Fast scalar random draws from a numpy `Generator`, pre-drawn in blocks.

The simulator makes a few hundred draws per turn; drawing them one numpy call at a time
would dominate its run time, so uniforms and normals come from blocks turned into lists.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")
_BLOCK = 1 << 16


def _stream(draw: Callable[[int], np.ndarray]) -> Callable[[], float]:
    """A C-level `next` over blocks of draws: far cheaper per call than a Python method."""

    def blocks() -> Iterator[float]:
        while True:
            yield from draw(_BLOCK).tolist()

    return blocks().__next__


class Draws:
    """Deterministic scalar draws (uniform, normal, choices) from one numpy Generator."""

    __slots__ = ("u", "z")

    def __init__(self, rng: np.random.Generator) -> None:
        #: A uniform draw in [0, 1).
        self.u = _stream(rng.random)
        #: A standard normal draw.
        self.z = _stream(rng.standard_normal)

    def chance(self, p: float) -> bool:
        return self.u() < p

    def normal(self, mean: float, sd: float) -> float:
        return mean + sd * self.z()

    def logit_normal(self, mean: float, sd: float) -> float:
        """A probability-like score in (0, 1): the logistic of a normal draw."""
        return 1.0 / (1.0 + math.exp(-(mean + sd * self.z())))

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.z())

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.u() * len(items))]

    def weighted(self, items: Sequence[T], cumulative: Sequence[float]) -> T:
        """An item drawn with the weights whose normalised cumulative sums are given."""
        return items[min(bisect_right(cumulative, self.u()), len(items) - 1)]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
