"""Build pydantic IR objects, turning ValidationErrors into diagnostics.

Every IR object the lowering creates goes through `build`, so a bad value is
reported at the span of the construct that wrote it, with wording users can
act on, and pydantic's own text never reaches them. Tested by tests/test_model.py.

pydantic is the IR's validator of record, but building its validators (the IR's core
schemas, and with the first one pydantic's plugin loader, importlib.metadata and email)
cost a one-file `hvconf check` 23 of its 274 ms CPU. With `as_needed`, an object whose
every value is plainly of its field's type and within its bounds (read from the model's
own field annotations: `plain_fields`) is made with `model_construct`, which holds the
same values validation would; anything else (a wrong type, a value out of range, an int
beyond 64 bits, a string with a lone surrogate, a field the table cannot read, any object
of a model with validators) is validated by pydantic as before. `hvconf build` always
validates everything. Tests: tests/test_validation_shortcut.py.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Callable, Literal, Mapping, TypeVar, Union

import annotated_types
from pydantic import BaseModel, ValidationError

from hvconf.diagnostics import Report, Span, close_matches
from hvconf.record import Record

M = TypeVar("M", bound=BaseModel)
Plain = Callable[[Any], bool]
_I64 = 1 << 63  # pydantic-core holds smaller ints natively; larger ones are validated, not taken as they are


def _no(value: Any) -> bool:
    return False


def _int(value: Any) -> bool:
    return type(value) is int and -_I64 <= value < _I64


def _str(value: Any) -> bool:
    # A lone surrogate is no valid string for pydantic-core: let it say so.
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# metadata pydantic keeps on a field -> the test it stands for (anything else: validate)
_BOUNDS: dict[type, Callable[[Any, Any], bool]] = {
    annotated_types.Gt: lambda v, m: v > m.gt, annotated_types.Ge: lambda v, m: v >= m.ge,
    annotated_types.Lt: lambda v, m: v < m.lt, annotated_types.Le: lambda v, m: v <= m.le,
    annotated_types.MinLen: lambda v, m: len(v) >= m.min_length,
    annotated_types.MaxLen: lambda v, m: len(v) <= m.max_length,
}
_SCALARS: dict[Any, Plain] = {int: _int, str: _str, bool: lambda v: type(v) is bool, type(None): lambda v: v is None}


def _plain_type(annotation: Any) -> Plain:
    """A test that `value` is exactly of type `annotation` as validation would keep it."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return lambda v: any(type(v) is type(c) and v == c for c in args)
    if origin is Union or origin is types.UnionType:
        arms = [_plain_type(a) for a in args]
        return lambda v: any(arm(v) for arm in arms)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _plain_type(args[0])
        return lambda v: type(v) is tuple and all(item(i) for i in v)
    if origin is dict and args[0] is str:
        item = _plain_type(args[1])
        return lambda v: type(v) is dict and all(_str(k) and item(i) for k, i in v.items())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return lambda v: type(v) is annotation  # an instance is not validated again (revalidate_instances)
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return lambda v: isinstance(v, annotation)  # an arbitrary type (Span): pydantic checks isinstance
    return _no


def _plain_field(annotation: Any, metadata: list[Any]) -> Plain:
    kind = _plain_type(annotation)
    bounds = [(_BOUNDS.get(type(m)), m) for m in metadata]
    if any(test is None for test, _ in bounds):
        return _no
    checks = [(test, m) for test, m in bounds if test is not None]
    return lambda v: kind(v) and (v is None or all(test(v, m) for test, m in checks))


_PLAIN: dict[type[BaseModel], tuple[dict[str, Plain], frozenset[str]]] = {}


def plain_fields(model: type[BaseModel]) -> tuple[dict[str, Plain], frozenset[str]]:
    """Per field of `model`, the test that a value needs no validation; and the required fields."""
    if model not in _PLAIN:
        fields = model.model_fields
        # model_construct runs no validator: a model with any gets no shortcut at all
        found = model.__pydantic_decorators__
        validators = found.validators or found.field_validators or found.root_validators or found.model_validators
        _PLAIN[model] = ({name: _no if validators else _plain_field(f.annotation, f.metadata)
                          for name, f in fields.items()},
                         frozenset(name for name, f in fields.items() if f.is_required()))
    return _PLAIN[model]


def is_plain(model: type[BaseModel], data: Mapping[str, Any]) -> bool:
    """Whether validating `data` as `model` would succeed and keep every value as it is."""
    tests, required = plain_fields(model)
    return required <= data.keys() and all(name in tests and tests[name](v) for name, v in data.items())


def new(model: type[M], data: dict[str, Any], as_needed: bool) -> M:
    """`model(**data)`, validated by pydantic unless `as_needed` and `data` is plainly valid."""
    if as_needed and is_plain(model, data):
        return model.model_construct(**data)
    return model.model_validate(data)


def _describe(err: Mapping[str, Any], field: str) -> tuple[str, str | None]:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "literal_error":
        choices = [c.strip().strip("'") for c in str(ctx.get("expected", "")).replace(" or ", ",").split(",") if c.strip()]
        close = close_matches(str(value), choices, n=1)
        return (f"'{value}' is not a valid {field}; expected one of: {', '.join(choices)}",
                f"did you mean '{close[0]}'?" if close else None)
    bounds = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
              "less_than": "less than {lt}", "less_than_equal": "at most {le}",
              "string_too_short": "at least {min_length} characters long",
              "string_too_long": "at most {max_length} characters long"}
    if kind in bounds:
        limit = bounds[kind].format(**{k: (hex(v) if isinstance(v, int) and v > 0xFFFF else v) for k, v in ctx.items()})
        return f"{field} must be {limit} (found {value!r})", None
    if kind == "missing":
        return f"'{field}' is required", None
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{field} has the wrong type ({err['msg'].lower()}, found {value!r})", None
    return f"{field}: {err['msg']}", None


def build(model: type[M], data: dict[str, Any], report: Report, span: Span | None,
          field_spans: Mapping[str, Span] | None = None, what: str | None = None, as_needed: bool = False) -> M | None:
    """`model(**data)`, or None after reporting each validation error at its field's span.
    `as_needed`: pydantic validates only data that is not plainly valid (`new`)."""
    try:
        return new(model, data, as_needed)
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else (what or model.__name__)
            field_span = (field_spans or {}).get(field, span)
            message, help_ = _describe(err, field if not what else f"{what} {field}")
            report.error("invalid-value", message, field_span, help=help_)
        return None


def check_keys(keys: Mapping[str, Span], allowed: list[str], report: Report, what: str) -> bool:
    """Report unknown keys (with a did-you-mean); True when all are known."""
    ok = True
    for key, span in keys.items():
        if key not in allowed:
            ok = False
            close = close_matches(key, allowed, n=1)
            report.error("unknown-key", f"unknown {what} key '{key}'", span,
                         help=f"did you mean '{close[0]}'?" if close else f"{what} keys are: {', '.join(allowed)}")
    return ok
