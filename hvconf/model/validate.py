"""Build pydantic IR objects, turning ValidationErrors into diagnostics.

Every IR object the lowering creates goes through `build`, so a bad value is
reported at the span of the construct that wrote it, with wording users can
act on, and pydantic's own text never reaches them. Tested by tests/test_model.py.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from hvconf.diagnostics import Report, Span, close_matches

M = TypeVar("M", bound=BaseModel)


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
          field_spans: Mapping[str, Span] | None = None, what: str | None = None) -> M | None:
    """`model(**data)`, or None after reporting each validation error at its field's span."""
    try:
        return model.model_validate(data)
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
