"""A small LRU for what a long-lived worker keeps between jobs (engines, networks, compiled
steps, decoded images): bounded, so a stream of new layer choices or image shapes cannot grow
a worker's memory without end. Evicted values are dropped, so memory they alone hold is freed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """Values worth at most `size` in all (each worth 1, or `weigh(value)`, e.g. its bytes);
    using one makes it the most recent; the least recent go first. The newest value is kept
    even when it alone is worth more than `size`: its caller is using it."""

    def __init__(self, size: int, weigh: Callable[[V], int] | None = None) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one value")
        self.size = size
        self._weigh = weigh or (lambda _value: 1)
        self._values: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.RLock()

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of `key`, made (once, under the lock) when it is not held."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key][0]
            value = make()
            weight = self._weigh(value)
            self._values[key] = (value, weight)
            self._total += weight
            while self._total > self.size and len(self._values) > 1:
                self._total -= self._values.popitem(last=False)[1][1]
            return value

    @property
    def total(self) -> int:
        """What the held values are worth (their count, or the sum of their weights)."""
        return self._total

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values
