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
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from civicflow.spec import Entity, Field, field_expectations

SHANGHAI = ZoneInfo("Asia/Shanghai")

_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20  # ideographic space


class ParseError(ValueError):
    """A value that cannot be read as its field's type."""


def halfwidth(text: str) -> str:
    """Full-width ASCII forms (１２３ＡＢＣ, ideographic space) to their half-width forms."""
    if text.isascii():  # nothing to translate: the usual case, and a quick test
        return text
    return text.translate(_FULLWIDTH)


def clean_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if not value.isascii():  # ASCII text is already in NFC
        value = unicodedata.normalize("NFC", value)
    return value.strip() or None


def _number_text(value: Any) -> str:
    return halfwidth(str(value)).strip().replace(",", "")


_INTEGER = re.compile(r"[+-]?\d+")
_WHOLE_DECIMAL = re.compile(r"[+-]?\d+\.0*")


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
    if _INTEGER.fullmatch(text):
        return int(text)
    if _WHOLE_DECIMAL.fullmatch(text):
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
    return _date_of_text(value if type(value) is str else str(value))


# Dates repeat (birth dates, snapshot and visit days): a few thousand distinct values a batch.
# Bounded: 32,768 spellings, about 6 MB. Refusals are not cached (exceptions never are).
@lru_cache(maxsize=1 << 15)
def _date_of_text(value: str) -> dt.date:
    text = halfwidth(value).strip()
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
        text = value if type(value) is str else str(value)
        if not text.isascii():
            text = text.translate(_FULLWIDTH)  # halfwidth, inline
        text = text.strip()
        if "/" in text:
            text = text.replace("/", "-")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ParseError("not a timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment


_LIST_SEPARATORS = re.compile(r"[、;；,，]")


def to_text_array(value: Any) -> list[str]:
    if isinstance(value, str):
        items = _LIST_SEPARATORS.split(value)
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
        raise ParseError(_refused(f.source_name, exc, raw)) from exc


def _refused(source_name: str, exc: ParseError, raw: Any) -> str:
    shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:57] + "..."
    return f"field {source_name}: {exc} ({shown})"


_MISSING = object()
_GENERAL, _TEXT, _UNREAD = 0, 1, 2
# Converters that never refuse a value decoded from a payload: a raw-only field of these
# types that no expectation reads need not be converted at all (see :func:`_plan`).
_NEVER_REFUSE = frozenset({"text", "jsonb"})
_PLANS: dict[int, tuple[Entity, tuple[tuple[str, str, bool, int, Any], ...]]] = {}


def _unread(entity: Entity, f: Field) -> bool:
    """Whether ``f``'s typed value is never used: a raw-only field no expectation reads.

    Raw-only fields are never staged (transforms do not copy them) nor kept in quarantine
    (which keeps the record's original values), so converting them (``json.dumps`` of
    health's clinical ``details``, a tenth of the parse) is wasted unless GX checks them.
    """
    if not f.raw_only or f.type not in _NEVER_REFUSE or field_expectations(f):
        return False
    for e in entity.extra_expectations:
        kwargs = e.get("kwargs", {})
        if kwargs.get("column") == f.name or f.name in kwargs.get("column_list", ()):
            return False
    return True


def _plan(entity: Entity) -> tuple[tuple[str, str, bool, int, Any], ...]:
    """Each field's name, source name, requiredness, kind and converter, worked out once."""
    entry = _PLANS.get(id(entity))
    if entry is None or entry[0] is not entity:
        if len(_PLANS) > 1000:  # entities made on the fly (tests): stay small
            _PLANS.clear()
        plan = tuple(
            (
                f.name,
                f.source_name,
                f.required,
                _UNREAD if _unread(entity, f) else _TEXT if f.type == "text" else _GENERAL,
                CONVERTERS[f.type],
            )
            for f in entity.fields
        )
        entry = _PLANS[id(entity)] = (entity, plan)
    return entry[1]


def parse_record(entity: Entity, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Typed values of a record's fields, and the reasons for every value that was refused.

    The same as :func:`parse_value` field by field, with the common cases taken first;
    a raw-only field that nothing reads is checked for presence only, and typed as None.
    """
    typed: dict[str, Any] = {}
    reasons: list[str] = []
    if type(record) is not dict and not isinstance(record, Mapping):
        return typed, [f"record is not an object ({type(record).__name__})"]
    entry = _PLANS.get(id(entity))
    plan = entry[1] if entry is not None and entry[0] is entity else _plan(entity)
    for name, source, required, kind, convert in plan:
        raw = record.get(source, _MISSING)
        if raw is _MISSING:
            typed[name] = None
            if required:
                reasons.append(f"missing field {source}")
        elif raw is None or kind == _UNREAD:
            typed[name] = None
        elif kind == _TEXT and type(raw) is str:
            # clean_text, inline. NFC keeps blank text blank and the rest not blank, so
            # the blank test of parse_value can come after it.
            if not raw.isascii():
                raw = unicodedata.normalize("NFC", raw)
            typed[name] = raw.strip() or None
        elif isinstance(raw, str) and not raw.strip():
            typed[name] = None
        else:
            try:
                typed[name] = convert(raw)
            except ParseError as exc:
                typed[name] = None
                reasons.append(_refused(source, exc, raw))
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


_QUOTED = re.compile(r"(?<!\w)(?:'[^']*'|\"[^\"]*\")(?!\w)")  # not the ' of "number's"
_NUMBER = re.compile(r"\d{4}[\d\-/:.T]*")
_SHOWN_VALUE = re.compile(r"^(field \S+: [^(]*?) \(.*\)$")


def without_values(reason: str) -> str:
    """A reason without the values it quotes: fit for logs and the audit, which analysts read.

    ``field 出生日期: not a date ('1942-13-05')`` → ``field 出生日期: not a date``;
    ``unknown community '旧南海x' in street 440104001`` → ``unknown community … in street …``.
    """
    text = _SHOWN_VALUE.sub(r"\1", reason.strip())
    text = _QUOTED.sub("…", text)
    return _NUMBER.sub("…", text)
