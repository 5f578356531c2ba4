"""A bounded memo of rendered subtrees, keyed by their exact value.

The VMs of one file share most of their plan (the steps a base defines are
the same for every VM that extends it), and rendering them as JSON and as a
Python literal was most of the time of building 10,000 VMs. The key is the
subtree's `marshal` serialisation: computed in C, exact (marshal accepts
only the plain built-in types, never a subclass, and tells them apart: 1,
True and 1.0, a list and a tuple), so two subtrees with one key render the
same. Tested by tests/test_emit_text.py.
"""

from __future__ import annotations

import marshal
from typing import Any, Hashable

_VERSION = 2  # no back-references (version 3 and later): equal values, equal bytes


def fingerprint(value: Any) -> bytes | None:
    """`value`'s exact key, or None when it holds anything but plain built-in data."""
    try:
        return marshal.dumps(value, _VERSION)
    except ValueError:  # an unmarshallable object, or nested too deeply
        return None


class Memo:
    """At most `limit` entries; emptied when full (cheaper than tracking recency, and a
    build reuses what its last few VMs rendered)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: dict[Hashable, str] = {}

    def get(self, key: Hashable) -> str | None:
        return self.entries.get(key)

    def put(self, key: Hashable, text: str) -> None:
        if len(self.entries) >= self.limit:
            self.entries.clear()
        self.entries[key] = text
