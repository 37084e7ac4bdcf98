"""The one bounded cache of every long-lived process: a worker's engines, networks, compiled
steps, style targets and decoded images; the API's rendered thumbnails, plots and sheets; the
database engines of each process. Bounded, so a stream of new keys (layer choices, image
shapes, thumbnails) cannot grow a process's memory without end; evicted values are dropped (and
handed to `on_evict` when given), so memory they alone hold is freed.
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
    even when it alone is worth more than `size`: its caller is using it.

    Thread-safe. A value is made once: callers asking for a key being made wait for it, while
    other keys are served and made meanwhile (the API renders many thumbnails at once).
    `on_evict(key, value)` hears of every value dropped to make room or by `pop`, after the
    cache's lock is released.
    """

    def __init__(
        self,
        size: int,
        weigh: Callable[[V], int] | None = None,
        on_evict: Callable[[Hashable, V], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one value")
        self.size = size
        self._weigh = weigh or (lambda _value: 1)
        self._on_evict = on_evict
        self._values: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._making: dict[Hashable, threading.Lock] = {}
        self._total = 0
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of `key`, made by `make()` (once) when it is not held."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key][0]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._values:  # made while this caller waited
                    self._values.move_to_end(key)
                    return self._values[key][0]
            try:
                value = make()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            self._put(key, value)
            return value

    def _put(self, key: Hashable, value: V) -> None:
        dropped = []
        with self._lock:
            weight = self._weigh(value)
            self._values[key] = (value, weight)
            self._total += weight
            while self._total > self.size and len(self._values) > 1:
                old, (old_value, old_weight) = self._values.popitem(last=False)
                self._total -= old_weight
                dropped.append((old, old_value))
        for old, old_value in dropped:
            self._evicted(old, old_value)

    def pop(self, key: Hashable) -> V | None:
        """Drop `key`'s value (handed to `on_evict`); the value, or None when none was held."""
        with self._lock:
            held = self._values.pop(key, None)
            if held is None:
                return None
            self._total -= held[1]
        self._evicted(key, held[0])
        return held[0]

    def _evicted(self, key: Hashable, value: V) -> None:
        if self._on_evict is not None:
            self._on_evict(key, value)

    def values(self) -> list[V]:
        """The values held, least recent first. Taken without the lock (one copy of the dict's
        values, which CPython makes without switching threads), so a forked child may call it
        even when another thread of its parent held the lock at the fork."""
        return [value for value, _weight in list(self._values.values())]

    @property
    def total(self) -> int:
        """What the held values are worth (their count, or the sum of their weights)."""
        return self._total

    def clear(self) -> None:
        """Forget every value (not handed to `on_evict`: the caller is discarding them)."""
        with self._lock:
            self._values.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values
