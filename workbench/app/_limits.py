"""Bounds on what one request may ask of the app: the one place these rules live.

Every callback request (``POST /_dash-update-component``) and every URL query passes through
here before a page sees it: bodies over :data:`MAX_BODY` bytes are refused (HTTP 413, by
waitress before the body is read and by Flask), malformed callback bodies and lists longer
than the property allows get HTTP 400 with one line saying which field is wrong, and query
values become bounded numbers or a message (never an exception).
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl

#: Largest request body accepted, bytes (a lasso of the default 5,000-point map is ~0.6 MB).
MAX_BODY = 1_000_000
#: Longest list any callback value may hold (cells of a layer, methods, spans...).
MAX_ITEMS = 4096
#: Longer lists allowed for some properties (plotly's lasso sends one entry per point).
ITEMS_BY_PROPERTY = {"selectedData": 20_000}
#: Longest string in a callback value, characters (explain's own limit is 10,000 tokens).
MAX_TEXT = 200_000
#: Deepest nesting of lists and dicts in a callback value.
MAX_DEPTH = 24
#: Largest integer a URL query may give (positions, sizes), in magnitude.
MAX_QUERY_INT = 10**12
#: Longest URL query string the router reads, characters, and most keys.
MAX_QUERY = 8192
MAX_QUERY_KEYS = 32


class BadRequestError(ValueError):
    """A callback request the app refuses (HTTP 400); the message is one line."""


def _check_value(value, where: str, items: int, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise BadRequestError(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise BadRequestError(
                f"{where} has {len(value):,} characters; the limit is {MAX_TEXT:,}"
            )
    elif isinstance(value, list):
        if len(value) > items:
            raise BadRequestError(f"{where} has {len(value):,} entries; the limit is {items:,}")
        for v in value:
            _check_value(v, where, items, depth + 1)
    elif isinstance(value, dict):
        if len(value) > items:
            raise BadRequestError(f"{where} has {len(value):,} keys; the limit is {items:,}")
        for v in value.values():
            _check_value(v, where, items, depth + 1)


def _check_item(item, field: str) -> None:
    if isinstance(item, list):  # pattern-matching ALL: a list of items
        if len(item) > MAX_ITEMS:
            raise BadRequestError(f"{field} has {len(item):,} entries; the limit is {MAX_ITEMS:,}")
        for i in item:
            _check_item(i, field)
        return
    if not isinstance(item, dict):
        raise BadRequestError(f"{field} entries must be objects with id and property")
    cid, prop = item.get("id"), item.get("property")
    if not isinstance(cid, str | dict) or not isinstance(prop, str):
        raise BadRequestError(f"{field} entries need a string id and property")
    items = ITEMS_BY_PROPERTY.get(prop, MAX_ITEMS)
    name = cid if isinstance(cid, str) else "pattern id"
    _check_value(item.get("value"), f"{name}.{prop}", items)


def check_callback_body(body) -> None:
    """Refuse a callback body Dash could not have sent, or one that asks too much.

    Parameters
    ----------
    body : object
        The parsed JSON of ``POST /_dash-update-component`` (None when it did not parse).

    Raises
    ------
    BadRequestError
        One line naming the field and the limit.
    """
    if not isinstance(body, dict):
        raise BadRequestError("the callback body must be a JSON object")
    output = body.get("output")
    if not isinstance(output, str) or not output or len(output) > MAX_TEXT:
        raise BadRequestError("the callback body needs an 'output' string")
    outputs = body.get("outputs")
    outs = outputs if isinstance(outputs, list) else [outputs]
    if len(outs) > MAX_ITEMS or not all(isinstance(o, dict | list) for o in outs):
        raise BadRequestError("'outputs' must be an object or a list of objects")
    for field in ("inputs", "state"):
        entries = body.get(field, [])
        if not isinstance(entries, list):
            raise BadRequestError(f"'{field}' must be a list")
        if len(entries) > MAX_ITEMS:
            raise BadRequestError(
                f"'{field}' has {len(entries):,} entries; the limit is {MAX_ITEMS:,}"
            )
        for item in entries:
            _check_item(item, field)
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise BadRequestError("'changedPropIds' must be a list of strings")
    if len(changed) > MAX_ITEMS:
        raise BadRequestError(f"'changedPropIds' has {len(changed):,} entries")


# --------------------------------------------------------------------------- URL values
def query(search: str | None) -> dict[str, str]:
    """The URL query as keyword arguments a page layout accepts (bounded, no clashes).

    Keys that are not Python identifiers (or that would clash with ``ctx``) are dropped, as
    is everything past :data:`MAX_QUERY` characters or :data:`MAX_QUERY_KEYS` keys.
    """
    text = (search or "").lstrip("?")[:MAX_QUERY]
    pairs = parse_qsl(text, max_num_fields=None)[:MAX_QUERY_KEYS]
    return {k: v for k, v in pairs if k.isidentifier() and k != "ctx"}


def query_int(text, what: str, problems: list[str], lo: int = -MAX_QUERY_INT,
              hi: int = MAX_QUERY_INT) -> int | None:  # fmt: skip
    """An integer from a URL value (``"12"``, ``"12.0"``, ``"1e3"``), or None with a problem.

    Non-numbers, infinities, NaN and values outside ``[lo, hi]`` add one line to
    ``problems`` and give None; a fractional value is refused too (a position is whole).
    """
    if text is None or text == "":
        return None
    raw = str(text).strip()[:64]
    try:
        value = int(raw)
    except ValueError:
        try:
            number = float(raw)
        except ValueError:
            problems.append(f"ignored {what}={text!r}: not a number")
            return None
        if not math.isfinite(number) or number != int(number):
            problems.append(f"ignored {what}={text!r}: not a whole number")
            return None
        value = int(number)
    if not lo <= value <= hi:
        problems.append(f"ignored {what}={text!r}: outside [{lo}, {hi}]")
        return None
    return value


def query_float(text, what: str, problems: list[str]) -> float | None:
    """A finite float from a URL value, or None with a line in ``problems``."""
    if text is None or text == "":
        return None
    try:
        value = float(str(text).strip()[:64])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(f"ignored {what}={text!r}: not a finite number")
        return None
    return value
