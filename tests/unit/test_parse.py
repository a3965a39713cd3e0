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


def test_parse_record_gives_what_parse_value_gives_field_by_field():
    """parse_record takes shortcuts for common values; each must agree with parse_value."""
    from civicflow.feeds.health import SERVICE_RECORDS
    from civicflow.parse import parse_value

    def by_field(record):
        typed, reasons = {}, []
        for f in SERVICE_RECORDS.fields:
            try:
                typed[f.name] = parse_value(f, record)
            except ParseError as exc:
                typed[f.name] = None
                reasons.append(str(exc))
        return typed, reasons

    base = {
        "record_id": " HR1 ",
        "id_no": "４４０１０４１９４２０３０５１２３Ｘ",
        "name": "Cafe\u0301",  # NFC composes the accent
        "service_type": 7,  # not text: str() of it
        "service_time": "２０２６-１０-０５ 09:30",
        "institution_code": "\u3000",  # blank
        "street": "  北京街 ",
        "community": "旧南海",
        "status": "",
        "updated_at": "2026/10/05T10:00:00+08:00",
    }
    for change in [
        {},
        {"service_time": "yesterday", "updated_at": 12},
        {"name": None, "street": " \t"},
        {"street": "\u2000北京街\u2001"},
    ]:
        record = {**base, **change}
        assert parse_record(SERVICE_RECORDS, record) == by_field({**record, "details": None})
    _, reasons = parse_record(SERVICE_RECORDS, {k: v for k, v in base.items() if k != "status"})
    assert reasons == ["missing field status"]


def test_a_raw_only_field_nothing_reads_is_not_converted_but_its_absence_is_still_seen():
    import dataclasses

    from civicflow.feeds.health import SERVICE_RECORDS

    record = {
        "record_id": "HR1",
        "id_no": "44010419420305123X",
        "name": None,
        "service_type": "HOME_VISIT",
        "service_time": "2026-10-05T09:30:00+08:00",
        "institution_code": None,
        "street": "北京街",
        "community": "旧南海",
        "status": "completed",
        "updated_at": "2026-10-05T10:00:00+08:00",
        "details": {"systolic": 150},
    }
    typed, reasons = parse_record(SERVICE_RECORDS, record)
    assert reasons == [] and typed["details"] is None  # never staged, never quarantined
    required = dataclasses.replace(
        SERVICE_RECORDS,
        fields=tuple(
            dataclasses.replace(f, required=True) if f.raw_only else f
            for f in SERVICE_RECORDS.fields
        ),
    )
    _, reasons = parse_record(required, {k: v for k, v in record.items() if k != "details"})
    assert reasons == ["missing field details"]
    checked = dataclasses.replace(  # an expectation reads it: converted as ever
        SERVICE_RECORDS,
        extra_expectations=(
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "details"}},
        ),
    )
    assert parse_record(checked, record)[0]["details"] == '{"systolic": 150}'


def test_dates_read_again_are_the_same_and_bad_ones_are_refused_every_time():
    for _ in range(2):
        assert to_date("19420305") == to_date(19420305) == dt.date(1942, 3, 5)
        with pytest.raises(ParseError, match="not a valid date"):
            to_date("1942-02-30")
