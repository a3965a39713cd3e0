"""What decides whether a register row is reused: the record's digest and the fingerprint."""

from __future__ import annotations

import copy

import pytest

from civicflow.feeds.civil_affairs import REGISTER
from civicflow.pipeline import record_digest, verdict_fingerprint
from civicflow.validation import load_suite

RECORD = {
    "身份证号": "440104193610240893",
    "姓名": "肖荣",
    "社区": "光明",
    "snapshot_date": "2026-11-25",
}
REFERENCES = {"division_references": [{"kind": "street", "street_code": "1", "name": "洪桥街"}]}
SECRET = b"a-test-secret-of-32-bytes-length"


def test_a_digest_ignores_the_snapshot_date_and_nothing_else():
    digest = record_digest(RECORD, "snapshot_date", b"k")
    assert digest == record_digest({**RECORD, "snapshot_date": "2026-11-26"}, "snapshot_date", b"k")
    assert digest != record_digest({**RECORD, "社区": "光明社区"}, "snapshot_date", b"k")
    assert digest != record_digest({**RECORD, "姓名": None}, "snapshot_date", b"k")
    assert digest != record_digest(RECORD, "snapshot_date", b"another key")
    renamed = {("社区2" if k == "社区" else k): v for k, v in RECORD.items()}
    assert digest != record_digest(renamed, "snapshot_date", b"k")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"a": "x\x1fy", "b": "z"}, {"a": "x", "b": "y\x1fz"}),
        ({"a": "x\x1dy"}, {"a\x1dx": "y"}),
        ({"a": "1", "b": None}, {"a": "1", "b": "None"}),
    ],
)
def test_separators_or_non_text_inside_values_never_make_two_records_one(one, other):
    assert record_digest(one, "snapshot_date") != record_digest(other, "snapshot_date")


def test_the_fingerprint_follows_the_suite_the_references_and_the_secret():
    suite = load_suite(REGISTER)
    fingerprint = verdict_fingerprint(REGISTER, suite, REFERENCES, SECRET)
    assert fingerprint == verdict_fingerprint(REGISTER, copy.deepcopy(suite), REFERENCES, SECRET)
    stricter = copy.deepcopy(suite)
    stricter["expectations"].append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}}
    )
    renamed = {"division_references": [{**REFERENCES["division_references"][0], "name": "洪桥"}]}
    others = [
        verdict_fingerprint(REGISTER, stricter, REFERENCES, SECRET),
        verdict_fingerprint(REGISTER, suite, renamed, SECRET),
        verdict_fingerprint(REGISTER, suite, REFERENCES, b"another-secret-of-32-bytes-long!"),
    ]
    assert None not in others and fingerprint not in others and len(set(others)) == 3


def test_no_reuse_when_a_passing_row_could_be_missing_a_checked_value():
    # A row that passed an expectation on a column not expected non-null may have had no
    # value there: counted as checked, it would skew the shares GX reports.
    suite = load_suite(REGISTER)
    assert verdict_fingerprint(REGISTER, suite, REFERENCES, SECRET) is not None
    nullable = copy.deepcopy(suite)
    nullable["expectations"].append(
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "phone"}}
    )
    assert verdict_fingerprint(REGISTER, nullable, REFERENCES, SECRET) is None
