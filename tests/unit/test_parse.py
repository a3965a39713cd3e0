import datetime as dt
from decimal import Decimal

import pytest

from civicflow.feeds.positions import VISITS
from civicflow.parse import (
    ParseError,
    extra_columns,
    halfwidth,
    missing_columns,
    parse_record,
    to_date,
    to_integer,
    to_numeric,
    to_text_array,
    to_timestamptz,
)


def test_halfwidth_turns_fullwidth_digits_letters_and_spaces_to_ascii():
    assert halfwidth("４４０１０４１９４２０３０５１２３Ｘ") == "44010419420305123X"
    assert halfwidth("\u3000ａｂｃ") == " abc"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("12", 12), (" ３１２ ", 312), ("1,204", 1204), (7.0, 7), ("8.00", 8), ("-2", -2)],
)
def test_to_integer_accepts_the_forms_departments_send(value, expected):
    assert to_integer(value) == expected


@pytest.mark.parametrize("value", ["many", "3.5", 2.5, True, "", "1e3"])
def test_to_integer_refuses_what_is_not_a_whole_number(value):
    with pytest.raises(ParseError):
        to_integer(value)


def test_to_numeric_keeps_decimals_exact_and_refuses_infinity():
    assert to_numeric("12.50") == Decimal("12.50")
    with pytest.raises(ParseError):
        to_numeric("Infinity")


@pytest.mark.parametrize("value", ["1942-03-05", "1942/3/5", "19420305", "１９４２-０３-０５"])
def test_to_date_accepts_all_three_date_forms(value):
    assert to_date(value) == dt.date(1942, 3, 5)


@pytest.mark.parametrize("value", ["1942-02-30", "19421305", "March 5", "42-3-5"])
def test_to_date_refuses_impossible_or_unknown_dates(value):
    with pytest.raises(ParseError):
        to_date(value)


def test_timestamps_without_offset_are_shanghai_time():
    moment = to_timestamptz("2026-11-20 14:03:11")
    assert moment.utcoffset() == dt.timedelta(hours=8)
    assert to_timestamptz("2026-10-05T09:30:00+00:00").utcoffset() == dt.timedelta(0)


def test_text_arrays_split_on_both_category_separators():
    assert to_text_array("高龄老人、独居老人;低保对象") == ["高龄老人", "独居老人", "低保对象"]
    assert to_text_array([" a ", "", "b"]) == ["a", "b"]


def test_parse_record_gives_a_reason_naming_the_field_and_value():
    record = {
        "position_code": "P1",
        "date": "2026-10-05",
        "visitors": "many",
        "activities_held": 1,
        "participants": 3,
    }
    typed, reasons = parse_record(VISITS, record)
    assert reasons == ["field visitors: not an integer ('many')"]
    assert typed["date"] == dt.date(2026, 10, 5)


def test_parse_record_reports_a_missing_required_field():
    _, reasons = parse_record(VISITS, {"position_code": "P1", "date": "2026-10-05"})
    assert "missing field visitors" in reasons


def test_a_record_that_is_not_an_object_is_refused():
    _, reasons = parse_record(VISITS, ["P1", "2026-10-05"])
    assert reasons == ["record is not an object (list)"]


def test_missing_and_extra_columns_describe_schema_drift():
    records = [
        {
            "position_code": "P1",
            "date": "2026-10-05",
            "visitors": 1,
            "participants": 2,
            "weather": "rain",
        }
    ]
    assert missing_columns(VISITS, records) == ["activities_held"]
    assert extra_columns(VISITS, records) == ["weather"]
    assert missing_columns(VISITS, []) == []
