"""Identifiers: resident ID numbers, credit codes, phones and person keys.

The valid numbers are the published examples of GB 11643 and python-stdnum,
not numbers this code produced.
"""

from __future__ import annotations

import datetime as dt

import pytest

from civicflow.identity import birth_date_of, gender_of, person_key, phone, resident_id, uscc
from civicflow.spec import Reject

GB_EXAMPLE = "11010519491231002X"  # GB 11643-1999, annex example
GB_EXAMPLE_2 = "440524188001010014"


@pytest.mark.parametrize(
    "raw",
    [
        GB_EXAMPLE,
        "11010519491231002x",
        " 110105 19491231 002X ",
        "１１０１０５１９４９１２３１００２Ｘ",
        "１１０１０５１９４９１２３１００２ｘ",
        "110105491231002",  # legacy 15-digit form of the same person
    ],
)
def test_every_spelling_of_an_id_number_becomes_the_canonical_one(raw):
    assert resident_id(raw) == GB_EXAMPLE


def test_an_id_born_before_its_region_code_existed_is_accepted():
    assert resident_id(GB_EXAMPLE_2) == GB_EXAMPLE_2  # born 1880, region code from the 1980s


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105194912310021", "invalid ID number check digit"),
        ("110105194902300026", "impossible birth date in ID number"),
        ("110105219912310021", "impossible birth date in ID number"),
        ("11010519491231002", "malformed ID number"),
        ("1101051949123100XX", "malformed ID number"),
        (None, "missing ID number"),
    ],
)
def test_invalid_id_numbers_are_rejected_with_the_reason(raw, reason):
    with pytest.raises(Reject) as err:
        resident_id(raw, today=dt.date(2026, 11, 27))
    assert err.value.reason == reason


def test_birth_date_and_gender_come_from_the_number():
    assert birth_date_of(GB_EXAMPLE) == dt.date(1949, 12, 31)
    assert gender_of(GB_EXAMPLE) == "F"  # sequence 002: even
    assert gender_of(GB_EXAMPLE_2) == "M"  # sequence 001: odd


def test_credit_codes():
    assert uscc(" 91110000600037341l ") == "91110000600037341L"
    with pytest.raises(Reject, match="check character"):
        uscc("91110000600037341M")
    with pytest.raises(Reject, match="malformed"):
        uscc("9111000060003734IL")  # I is not in the code's alphabet


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("１３８１２３４５６７８", "+8613812345678"),
        ("020-83331234", "+862083331234"),
    ],
)
def test_phones_become_e164(raw, e164):
    assert phone(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "not a phone", "1381234567"])
def test_bad_phones_are_rejected(raw):
    with pytest.raises(Reject):
        phone(raw)


def test_person_key_is_keyed_and_stable():
    a = person_key(GB_EXAMPLE, b"k" * 32)
    assert a == person_key(resident_id("110105491231002"), b"k" * 32)
    assert a != person_key(GB_EXAMPLE, b"j" * 32)
    assert len(a) == 64 and GB_EXAMPLE not in a


def test_a_number_read_before_is_judged_against_the_day_given_each_time():
    born_2026 = "110105202611270017"  # check digit right, born 2026-11-27
    assert resident_id(born_2026, today=dt.date(2026, 11, 27)) == born_2026
    with pytest.raises(Reject, match="impossible birth date"):
        resident_id(born_2026, today=dt.date(2026, 11, 26))
    with pytest.raises(Reject, match="impossible birth date"):
        resident_id("110105299912310012")  # far in the future, from the cache too
    with pytest.raises(Reject, match="impossible birth date"):
        resident_id("110105299912310012")


def test_a_batch_remembers_person_keys_within_its_bound(monkeypatch):
    import civicflow.spec as spec

    monkeypatch.setattr(spec, "PERSON_KEYS_KEPT", 2)
    context = spec.Context(None, b"k" * 32)
    numbers = [GB_EXAMPLE, GB_EXAMPLE_2, resident_id("110105491231002"), "440104194203051237"]
    for id_no in numbers * 2:
        assert context.person_key(id_no) == person_key(id_no, b"k" * 32)
        assert len(context._person_keys) <= 2
    with pytest.raises(RuntimeError):
        spec.Context(None, None).person_key(GB_EXAMPLE)
