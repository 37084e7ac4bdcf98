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
    """At most `size` values; using one makes it the most recent; the least recent goes first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one value")
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.RLock()

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of `key`, made (once, under the lock) when it is not held."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            value = make()
            self._values[key] = value
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values
