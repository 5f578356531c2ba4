"""The one exception type of hvconf.abi, the "did you mean" helper, and the lookup by name or
number that raises them.

Every lookup failure in the ABI tables (unknown name, macro absent on an
arch, malformed override file, value that does not fit an ioctl field)
raises AbiError with a message that names what was asked for. No table
loading happens here. Tests: tests/test_abi.py.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the runtime imports this module
if TYPE_CHECKING:
    from typing import TypeVar

    Row = TypeVar("Row")


class AbiError(LookupError):
    """A Linux KVM ABI fact was asked for that does not exist (or does not fit)."""


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` names from `known` that look like `name` (case-insensitive)."""
    by_upper = {k.upper(): k for k in known}
    return [by_upper[h] for h in _close(name.upper(), tuple(by_upper), n)]


@lru_cache(maxsize=1024)
def _close(word: str, candidates: tuple[str, ...], n: int) -> tuple[str, ...]:
    """Remembered: one misspelt cap in 500 VMs is compared with every cap name once. (Not
    hvconf.diagnostics.close_matches: hvconf.abi ships with the runtime, which has no diagnostics.)"""
    return tuple(difflib.get_close_matches(word, candidates, n=n, cutoff=0.6))


def unknown(kind: str, name: object, known: Iterable[str], where: str = "") -> AbiError:
    """An AbiError for a name that is not in a table, with a suggestion when one fits."""
    hint = close_matches(str(name), known) if isinstance(name, str) else []
    tail = f"; did you mean {' or '.join(hint)}?" if hint else ""
    place = f" {where}" if where else ""
    return AbiError(f"unknown {kind} {name!r}{place}{tail}")


def by_name_or_number(table: Mapping[str, Row], key: str | int, number: Callable[[Row], int], kind: str,
                      no_number: str, hint: Callable[[str], str] = lambda name: "") -> Row:
    """The row of `table` named `key`, or for an int the row whose `number` it is. A miss raises
    AbiError: `no_number` formatted with the number, or `unknown` with a did-you-mean and `hint(name)`."""
    if isinstance(key, int):
        for row in table.values():
            if number(row) == key:
                return row
        raise AbiError(no_number.format(key))
    try:
        return table[key]
    except KeyError:
        raise unknown(kind, key, table, hint(key)) from None
