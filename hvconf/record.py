"""Record: the base of small immutable values, a light stand-in for frozen dataclasses.

A subclass lists its fields in `__slots__` (in constructor order) and their
defaults, if any, in `_defaults`; it gets a positional-or-keyword
constructor, equality and hashing by exact type and field values, a
dataclass-like repr, and assignment that raises. No code generation, so
defining one costs what a plain class costs: each @dataclass compiles its
methods at import, which was a third of the runtime's import time and 5 ms
of a one-file `hvconf check` for the AST's 21 node classes. Hot classes
(exits.Io, the AST nodes) define their own __init__ with `_set`.

Shared by the runtime (hvconf.kvm) and the compiler (hvconf.syntax.ast), so
it lives beside both and imports nothing. Tests: tests/kvm/test_record.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 3 ms)
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound="Record")

_set = object.__setattr__


class Record:
    __slots__: tuple[str, ...] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} arguments, got {len(args)}")
        for name, value in zip(names, args):
            _set(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                _set(self, name, kwargs.pop(name))
            elif name in self._defaults:
                _set(self, name, self._defaults[name])
            else:
                raise TypeError(f"{type(self).__name__}() is missing argument {name!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected or repeated arguments {', '.join(kwargs)}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def _replace(self: R, **changes: Any) -> R:
        """A copy with `changes` (dataclasses.replace, namedtuple._replace)."""
        return type(self)(**{**dict(zip(self.__slots__, self._values())), **changes})

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of an immutable {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of an immutable {type(self).__name__}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), self._values()
