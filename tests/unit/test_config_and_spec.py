import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from civicflow.config import (
    DEMO_PERSON_KEY,
    ConfigurationError,
    base_url,
    check_person_key,
    postgres_url,
)
from civicflow.feeds import all_entities
from civicflow.feeds.positions import VISITS, visit_requests
from civicflow.spec import Field, Window, suite, suite_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("host", "scheme", "port", "expected"),
    [
        (
            "https://gateway.example.gov.cn/health",
            None,
            None,
            "https://gateway.example.gov.cn/health/",
        ),
        ("feeds.local", None, 8080, "http://feeds.local:8080/"),
        ("feeds.local", "https", None, "https://feeds.local/"),
    ],
)
def test_base_url_follows_the_http_provider_conventions(host, scheme, port, expected):
    assert base_url(host, scheme, port) == expected


def test_a_connection_without_host_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="no host"):
        base_url(None)


def test_person_key_is_required():
    with pytest.raises(ConfigurationError, match="no person-key secret"):
        check_person_key(None, "production")


def test_the_demo_key_is_refused_in_production_and_accepted_in_the_demo():
    with pytest.raises(ConfigurationError, match="published demo key"):
        check_person_key(DEMO_PERSON_KEY, "production")
    assert check_person_key(DEMO_PERSON_KEY, "demo") == DEMO_PERSON_KEY.encode()
    assert check_person_key("a-real-secret-of-32-characters!!", "production")


def test_postgres_url_quotes_credentials():
    url = postgres_url("db.example", 5433, "civicflow", "etl", "p@ss:word/1")
    assert url == "postgresql://etl:p%40ss%3Aword%2F1@db.example:5433/civicflow"


def test_expectation_suites_in_the_repo_match_the_feed_descriptions():
    for entity in all_entities():
        stored = json.loads(suite_path(entity, ROOT).read_text(encoding="utf-8"))
        assert stored == suite(entity), f"run `make expectations` for {entity.qualified_name}"


def test_field_attributes_become_expectations():
    labels = [e["type"] + ":" + e["kwargs"]["column"] for e in suite(VISITS)["expectations"]]
    assert "expect_column_values_to_be_between:visitors" in labels
    assert "expect_column_values_to_not_be_null:date" in labels
    assert "expect_column_values_to_match_regex:position_code" in labels


def test_a_personal_field_may_not_become_a_column():
    with pytest.raises(ValueError, match="personal fields"):
        dataclasses.replace(
            VISITS, fields=(*VISITS.fields, Field("visitors", "integer", personal=True))
        )


def test_visit_requests_cover_lookback_and_catch_up_missed_days():
    day = dt.date(2026, 11, 26)
    dates = [r.params["date"] for r in visit_requests(Window(day, day))]
    assert dates == ["2026-11-24", "2026-11-25", "2026-11-26"]
    dates = [r.params["date"] for r in visit_requests(Window(day, day, "2026-11-19"))]
    assert dates[0] == "2026-11-20" and dates[-1] == "2026-11-26" and len(dates) == 7
    dates = [r.params["date"] for r in visit_requests(Window(day, day, "2020-01-01"))]
    assert len(dates) == 31  # catch-up is bounded by max_catchup_days
    one = visit_requests(Window(day, day, None, {"lookback_days": 1}))
    assert [r.params["date"] for r in one] == ["2026-11-26"]
