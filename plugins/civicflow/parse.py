"""Turning source records into typed values, with a reason for every value refused.

Shared normalisation lives here (full-width to half-width, trimming, dates in
the departments' forms) so every feed cleans data the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from civicflow.spec import Entity, Field

SHANGHAI = ZoneInfo("Asia/Shanghai")

_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20  # ideographic space


class ParseError(ValueError):
    """A value that cannot be read as its field's type."""


def halfwidth(text: str) -> str:
    """Full-width ASCII forms (１２３ＡＢＣ, ideographic space) to their half-width forms."""
    return text.translate(_FULLWIDTH)


def clean_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = unicodedata.normalize("NFC", value).strip()
    return value or None


def _number_text(value: Any) -> str:
    return halfwidth(str(value)).strip().replace(",", "")


def to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ParseError("not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ParseError("not an integer")
    text = _number_text(value)
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?\d+\.0*", text):
        return int(text.split(".")[0])
    raise ParseError("not an integer")


def to_numeric(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ParseError("not a number")
    try:
        number = Decimal(_number_text(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise ParseError("not a number") from exc
    if not number.is_finite():
        raise ParseError("not a finite number")
    return number


def to_double(value: Any) -> float:
    return float(to_numeric(value))


def to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _number_text(value).lower()
    if text in {"true", "1", "yes", "y", "是", "t"}:
        return True
    if text in {"false", "0", "no", "n", "否", "f"}:
        return False
    raise ParseError("not a boolean")


_DATE_FORMS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


def to_date(value: Any) -> dt.date:
    """A date in any of the departments' forms: ``1942-03-05``, ``1942/3/5``, ``19420305``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = halfwidth(str(value)).strip()
    for form in _DATE_FORMS:
        m = form.match(text)
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError as exc:
                raise ParseError("not a valid date") from exc
    raise ParseError("not a date")


def to_timestamptz(value: Any) -> dt.datetime:
    """ISO 8601 with an offset; local times without one are Asia/Shanghai."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = halfwidth(str(value)).strip().replace("/", "-")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ParseError("not a timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment


def to_text_array(value: Any) -> list[str]:
    if isinstance(value, str):
        items = re.split(r"[、;；,，]", value)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ParseError("not a list")
    out = []
    for item in items:
        text = clean_text(item)
        if text is not None:
            out.append(text)
    return out


def to_jsonb(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


CONVERTERS = {
    "text": clean_text,
    "integer": to_integer,
    "bigint": to_integer,
    "numeric": to_numeric,
    "double": to_double,
    "boolean": to_boolean,
    "date": to_date,
    "timestamptz": to_timestamptz,
    "text[]": to_text_array,
    "jsonb": to_jsonb,
}


def parse_value(f: Field, record: Mapping[str, Any]) -> Any:
    """The typed value of field ``f`` in ``record``; raises :class:`ParseError` with a reason."""
    if f.source_name not in record:
        if f.required:
            raise ParseError(f"missing field {f.source_name}")
        return None
    raw = record[f.source_name]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return CONVERTERS[f.type](raw)
    except ParseError as exc:
        shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
        raise ParseError(f"field {f.source_name}: {exc} ({shown})") from exc


def parse_record(entity: Entity, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Typed values of a record's fields, and the reasons for every value that was refused."""
    typed: dict[str, Any] = {}
    reasons: list[str] = []
    if not isinstance(record, Mapping):
        return typed, [f"record is not an object ({type(record).__name__})"]
    for f in entity.fields:
        try:
            typed[f.name] = parse_value(f, record)
        except ParseError as exc:
            typed[f.name] = None
            reasons.append(str(exc))
    return typed, reasons


def missing_columns(entity: Entity, records: list[Mapping[str, Any]]) -> list[str]:
    """Required fields that no record of a batch carries: schema drift, not dirty rows."""
    if not records:
        return []
    seen: set[str] = set()
    for record in records:
        if isinstance(record, Mapping):
            seen.update(record.keys())
    return [f.source_name for f in entity.required_fields if f.source_name not in seen]


def extra_columns(entity: Entity, records: list[Mapping[str, Any]]) -> list[str]:
    """Fields the records carry that the description does not know (tolerated, reported)."""
    known = {f.source_name for f in entity.fields}
    seen: set[str] = set()
    for record in records:
        if isinstance(record, Mapping):
            seen.update(record.keys())
    return sorted(seen - known)
