"""The geo cover and the day-block terms are exact: checked against brute force."""
from __future__ import annotations

import random
from datetime import date

import pytest

from search import geo, timeline


@pytest.mark.parametrize("lat, lon", [(39.76, -84.19), (64.8, -147.7), (-89.5, 10.0), (0.1, -179.9),
                                      (21.3, -157.8)])
@pytest.mark.parametrize("radius", [0.3, 5.0, 50.0, 400.0])
def test_cover_classifies_every_point(lat: float, lon: float, radius: float) -> None:
    c = geo.cover(lat, lon, radius)
    inside, boundary = set(c.inside), set(c.boundary)
    rng = random.Random(f"{lat}{lon}{radius}")
    for _ in range(3000):
        plat = max(-90.0, min(90.0, lat + rng.uniform(-1, 1) * radius / 60))
        plon = (lon + rng.uniform(-1, 1) * radius / 40 + 180) % 360 - 180
        terms = set(geo.cell_terms(plat, plon))
        distance = geo.haversine_km(lat, lon, plat, plon)
        if terms & inside:
            assert distance <= radius  # an inside cell never holds a point outside
        elif distance <= radius:
            assert terms & boundary  # every point within is in an inside or a boundary cell
        assert c.contains([(plat, plon)]) == (distance <= radius)


def test_cover_stays_small() -> None:
    # A term set of ~1,000 cells costs a few ms at 1M documents; checking the candidates of
    # coarser boundary cells one by one cost more (docs/search.md).
    for radius in (1.0, 25.0, 50.0, 100.0, 150.0, 300.0, 800.0, geo.MAX_RADIUS_KM):
        c = geo.cover(40.0, -100.0, radius)
        assert len(c.inside) + len(c.boundary) < 1200


def test_day_blocks_answer_membership_exactly() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        start = rng.randint(0, timeline.OPEN_END)
        end = rng.choice([timeline.OPEN_END, rng.randint(start, timeline.OPEN_END)])
        terms = set(timeline.interval_terms("L", [(start, end)]))
        for day in (start, end, max(0, start - 1), min(timeline.OPEN_END, end + 1),
                    rng.randint(0, timeline.OPEN_END)):
            hits = sum(t in terms for t in timeline.day_terms("L", day))
            assert hits == (1 if start <= day <= end else 0)


def test_intervals_merge() -> None:
    assert timeline.merge([(10, 20), (21, 30), (25, 40), (50, 60)]) == [(10, 40), (50, 60)]
    assert timeline.parse_day("2024-06-30") == timeline.day(date(2024, 6, 30))
    assert timeline.parse_day("not a date") is None
