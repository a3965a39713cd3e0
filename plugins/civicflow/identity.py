"""Identifiers of people and organisations: one normalisation for every feed.

Resident ID numbers (GB 11643), unified social credit codes (GB 32100) and
phone numbers arrive in the departments' many spellings. Each function here
returns the one canonical form or raises :class:`~civicflow.spec.Reject` with
the reason the record is quarantined. Check characters come from python-stdnum
and phone rules from phonenumbers, not from hand-written tables.

``person_key`` is the only form of an ID number that leaves staging: the
HMAC-SHA256 of the canonical 18-character ID under the secret key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from functools import lru_cache

from civicflow.parse import halfwidth
from civicflow.spec import Reject

_ID18 = re.compile(r"\d{17}[\dX]")
_ID15 = re.compile(r"\d{15}")
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
_SPACES = re.compile(r"\s+")
EARLIEST_BIRTH = dt.date(1880, 1, 1)
# A day that has certainly come (the clock only moves on): a birth date on or before it is
# not in the future, without a call of ``date.today()`` (half a microsecond) for every record.
_PASSED = dt.date.today()


def _id_check_digit(first17: str) -> str:
    from stdnum.cn import ric

    # calc_check_digit reads the first 17 characters of an 18-character number.
    return ric.calc_check_digit(first17 + "0")


def resident_id(value: object, today: dt.date | None = None) -> str:
    """The canonical 18-character resident ID number, or Reject with why it is invalid.

    Accepts full-width digits, surrounding and inner spaces, a lowercase ``x``
    and the legacy 15-digit form (upgraded by inserting the century ``19`` and
    computing the check digit). The six-digit region code is deliberately not
    checked against the birth date (see the feed interfaces); python-stdnum's
    own ``validate`` would reject every Yuexiu resident born before 1983.
    """
    if value is None:
        raise Reject("missing ID number")
    text, born, check_ok = _read_id(value if type(value) is str else str(value))
    if today is not None:
        possible = EARLIEST_BIRTH <= born <= today
    else:  # a birth date on or before a day that has passed needs no look at the clock
        possible = born >= EARLIEST_BIRTH and (born <= _PASSED or born <= dt.date.today())
    if not possible:
        raise Reject("impossible birth date in ID number")
    if not check_ok:
        raise Reject("invalid ID number check digit")
    return text


# The same person appears in many records; their number is read once. Bounded: 32,768
# numbers, about 9 MB. A malformed number (Reject) is not cached: exceptions never are.
@lru_cache(maxsize=1 << 15)
def _read_id(value: str) -> tuple[str, dt.date, bool]:
    """The canonical form of a number, its birth date and whether its check digit is right."""
    if len(value) == 18 and value.isascii() and value[:17].isdigit():
        text = value if value[17] != "x" else value.upper()  # the usual spelling, quickly
        if not (text[17].isdigit() or text[17] == "X"):
            raise Reject("malformed ID number")
    else:
        text = _SPACES.sub("", halfwidth(value)).upper()
        if _ID15.fullmatch(text):
            text = text[:6] + "19" + text[6:]
            text += _id_check_digit(text)
        elif not _ID18.fullmatch(text):
            raise Reject("malformed ID number")
    try:
        born = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise Reject("impossible birth date in ID number") from None
    return text, born, _id_check_digit(text[:17]) == text[17]


def birth_date_of(id_no: str) -> dt.date:
    """The birth date encoded in a canonical ID number."""
    return dt.date(int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14]))


def gender_of(id_no: str) -> str:
    """``M`` or ``F`` from the sequence code's parity (odd = male), per GB 11643."""
    return "M" if int(id_no[16]) % 2 else "F"


def uscc(value: object) -> str:
    """The canonical 18-character unified social credit code, or Reject."""
    if value is None:
        raise Reject("missing credit code")
    text = _SPACES.sub("", halfwidth(str(value))).upper()
    if not _USCC.fullmatch(text):
        raise Reject("malformed credit code")
    from stdnum.cn import uscc as std_uscc

    if std_uscc.calc_check_digit(text) != text[17]:
        raise Reject("invalid credit code check character")
    return text


def phone(value: object) -> str:
    """A phone number in E.164 (``+8613812345678``, ``+862083331234``), or Reject.

    Mainland numbers without a country code are read as Chinese numbers; a
    landline needs its area code (``020-83331234``).
    """
    import phonenumbers

    if value is None:
        raise Reject("missing phone number")
    text = halfwidth(str(value)).strip()
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise Reject("malformed phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise Reject("invalid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_KEYED: dict[bytes, hmac.HMAC] = {}  # the HMAC state after each secret, copied per number


def person_key(id_no: str, key: bytes) -> str:
    """HMAC-SHA256 of a canonical ID number: the same person, the same key, in every feed."""
    if type(key) is not bytes:
        return hmac.new(key, id_no.encode("ascii"), hashlib.sha256).hexdigest()
    keyed = _KEYED.get(key)
    if keyed is None:
        if len(_KEYED) >= 4:  # a process knows one secret, two while it is rotated
            _KEYED.clear()
        keyed = _KEYED[key] = hmac.new(key, digestmod=hashlib.sha256)
    mac = keyed.copy()  # the same as hmac.new(key, ...) without hashing the key again
    mac.update(id_no.encode("ascii"))
    return mac.hexdigest()
