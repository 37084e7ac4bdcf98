"""The one bounded cache every long-lived process uses (atelier/cache.py)."""

from __future__ import annotations

import threading
import time

from atelier.cache import LRU


def test_the_lru_is_bounded_by_weight_and_keeps_the_newest():
    lru: LRU[str] = LRU(10, weigh=len)
    for key in "abc":
        lru.get_or_make(key, lambda: "1234")
    assert "a" not in lru and lru.total == 8  # 12 > 10: the least recent went
    lru.get_or_make("b", lambda: "never made")  # b is now the most recent
    lru.get_or_make("d", lambda: "1234")
    assert "c" not in lru and "b" in lru and lru.total == 8
    assert lru.get_or_make("huge", lambda: "x" * 20) == "x" * 20
    assert len(lru) == 1 and lru.total == 20  # alone over the bound, but in use


def test_what_the_lru_drops_is_handed_to_on_evict_after_its_lock():
    dropped: list[tuple[object, str]] = []

    def evict(key: object, value: str) -> None:
        assert lru.pop("absent") is None  # the cache's lock is free here: it may be used
        dropped.append((key, value))

    lru: LRU[str] = LRU(2, on_evict=evict)
    for key in "abc":
        lru.get_or_make(key, lambda key=key: key.upper())
    assert dropped == [("a", "A")]
    assert lru.pop("c") == "C" and dropped[-1] == ("c", "C")
    assert lru.pop("c") is None and lru.total == 1
    lru.clear()
    assert len(lru) == 0 and lru.total == 0 and len(dropped) == 2  # clear hands nothing over


def test_a_value_is_made_once_while_other_keys_are_made_meanwhile():
    lru: LRU[str] = LRU(8)
    started = threading.Event()
    release = threading.Event()
    made: list[str] = []

    def slow() -> str:
        made.append("slow")
        started.set()
        release.wait(10)
        return "slow value"

    results: list[str] = []
    callers = [
        threading.Thread(target=lambda: results.append(lru.get_or_make("slow", slow)))
        for _ in range(3)
    ]
    callers[0].start()
    assert started.wait(10)
    for caller in callers[1:]:
        caller.start()
    # While "slow" is being made, another key is made and served without waiting for it.
    assert lru.get_or_make("quick", lambda: "quick value") == "quick value"
    time.sleep(0.05)  # the other callers of "slow" are waiting for it, not making it again
    release.set()
    for caller in callers:
        caller.join(10)
    assert results == ["slow value"] * 3 and made == ["slow"]
