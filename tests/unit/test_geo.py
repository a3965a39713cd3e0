import itertools

import pytest

from civicflow.geo import gcj02_to_wgs84, great_circle_m, wgs84_to_gcj02


def test_gcj02_offset_in_guangzhou_is_a_few_hundred_metres():
    lon, lat = 113.2644, 23.1291  # central Guangzhou, WGS 84
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    offset = great_circle_m(lon, lat, g_lon, g_lat)
    assert 300 < offset < 700
    # In Guangzhou GCJ-02 shifts points east and a little south of WGS 84.
    assert g_lon - lon == pytest.approx(0.0053, abs=0.0005)
    assert lat - g_lat == pytest.approx(0.0027, abs=0.0005)


@pytest.mark.parametrize(
    ("lon", "lat"),
    list(itertools.product([73.5, 100.0, 113.27, 121.47, 134.0], [18.2, 23.13, 31.23, 45.0])),
)
def test_gcj02_to_wgs84_inverts_the_offset_to_under_a_centimetre(lon, lat):
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert great_circle_m(lon, lat, *back) < 0.01


def test_points_outside_china_are_not_shifted():
    assert gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)
    assert wgs84_to_gcj02(-74.0, 40.7) == (-74.0, 40.7)


def test_great_circle_distance_of_one_degree_of_latitude():
    assert great_circle_m(113.0, 23.0, 113.0, 24.0) == pytest.approx(111_195, rel=1e-3)
