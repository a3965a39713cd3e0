"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from . import small_district


@pytest.fixture
def district(warehouse_url: str) -> str:
    """A warehouse holding the hand-made district of ``small_district``, marts refreshed."""
    return small_district.build(warehouse_url)
