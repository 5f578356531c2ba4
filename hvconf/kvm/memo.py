"""`memoize`: functools.cache for the runtime's few pure functions of small keys.

functools imports collections, and collections with its helpers cost about
1.5 ms of a 20 ms launch; a dict does the same job for keys that number a
handful (arches, table addresses). Races only compute a value twice.
Tests: tests/kvm/test_record.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    K = TypeVar("K")
    V = TypeVar("V")


def memoize(fn: Callable[[K], V]) -> Callable[[K], V]:
    """`fn` with its results kept by argument (one positional, hashable argument)."""
    results: dict[K, V] = {}

    def cached(key: K) -> V:
        try:
            return results[key]
        except KeyError:
            value = results[key] = fn(key)
            return value

    cached.__name__, cached.__qualname__, cached.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    cached.cache = results  # type: ignore[attr-defined]  # for tests
    return cached
