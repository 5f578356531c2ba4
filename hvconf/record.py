"""Record: the base of small immutable values, a light stand-in for frozen dataclasses.

A subclass lists its fields in `__slots__` (in constructor order) and their
defaults, if any, in `_defaults`; it gets a positional-or-keyword
constructor, equality and hashing by exact type and field values, a
dataclass-like repr, and assignment that raises. Defining one costs what a
plain class costs: each @dataclass compiles several methods at import, which
was a third of the runtime's import time and 5 ms of a one-file `hvconf check`
for the AST's 21 node classes. Hot classes, built per token, step or exit (the AST
nodes, Span, the formatter's Tok, the plan's Step, the runtime's Io), are
`@positional`: one generated __init__ of one `_set` per field, as fast as a
hand-written one.

Shared by the runtime (hvconf.kvm) and the compiler (hvconf.syntax.ast), so
it lives beside both and imports nothing. Tests: tests/kvm/test_record.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 3 ms)
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
else:
    def dataclass_transform(**_: object) -> Any:  # PEP 681's marker, for type checkers only
        return lambda decorator: decorator

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


@dataclass_transform(frozen_default=True)
def positional(cls: type[R]) -> type[R]:
    """Give a hot Record the constructor a hand-written one would be: one `_set` per field of
    its __slots__, in order, by position or keyword, no defaults (Record's generic __init__
    matches arguments in a loop, about 1.5x as slow). Compiled once, as the class is defined:
    importing the AST's 21 node classes took as long (3.0-3.1 ms) as with the same __init__s
    written out and loaded from a .pyc. Type checkers take the signature from the annotations
    (PEP 681, dataclass_transform)."""
    names = cls.__slots__
    source = f"def __init__(self, {', '.join(names)}) -> None:" + "".join(
        f"\n    _set(self, {name!r}, {name})" for name in names)
    scope: dict[str, Any] = {"_set": _set}
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)
    return cls
