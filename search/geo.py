"""Geo points and "within radius_km of lat,lon" for an engine with no geo queries (Tantivy).

Each point is indexed as the terms of the quadtree cells that contain it, one per even level
(level L cuts longitude and latitude into 2^L slices each; odd levels are skipped to halve the
terms per point, a cover steps two levels at a time). A circle is covered by cells: the cells
entirely inside it (at the coarsest level where they are), and boundary cells at a level about
1/32 of the radius wide. A document matches if it has a point in an inside cell, or a point in a
boundary cell that is really within the radius: the backend checks those few candidates exactly
with `haversine_km`, the same formula Elasticsearch's `geo_distance` (arc) uses, so both backends
return the same documents.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

EARTH_RADIUS_KM = 6371.0088  # mean radius; Elasticsearch uses 6371008.7714 m
MAX_LEVEL = 16  # cells of about 0.3 km x 0.6 km at 40 degrees north
MIN_LEVEL = 2
STEP = 2
MAX_RADIUS_KM = 1000.0
CELLS_PER_RADIUS = 32  # boundary cells about radius/32 tall: fewer candidates to check exactly


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def valid_point(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and not (lat == 0 and lon == 0)


def _xy(lat: float, lon: float, level: int) -> tuple[int, int]:
    n = 1 << level
    x = min(n - 1, int((lon + 180.0) / 360.0 * n))
    y = min(n - 1, int((lat + 90.0) / 180.0 * n))
    return x, y


def cell_terms(lat: float, lon: float) -> list[str]:
    """The index terms of a point: its cell at every level."""
    x, y = _xy(lat, lon, MAX_LEVEL)
    return [f"{level}/{x >> (MAX_LEVEL - level)}/{y >> (MAX_LEVEL - level)}"
            for level in range(MIN_LEVEL, MAX_LEVEL + 1, STEP)]


@dataclass(frozen=True, slots=True)
class Cover:
    """The cells covering a circle: documents with a point in `inside` match; those with a point
    only in `boundary` cells must be checked exactly."""

    lat: float
    lon: float
    radius_km: float
    inside: tuple[str, ...]
    boundary: tuple[str, ...]

    def contains(self, points: Iterable[tuple[float, float]]) -> bool:
        return any(haversine_km(self.lat, self.lon, la, lo) <= self.radius_km for la, lo in points)


def _bounds(level: int, x: int, y: int) -> tuple[float, float, float, float]:
    n = 1 << level
    return (y * 180.0 / n - 90.0, (y + 1) * 180.0 / n - 90.0,
            x * 360.0 / n - 180.0, (x + 1) * 360.0 / n - 180.0)


def _min_distance(lat: float, lon: float, b: tuple[float, float, float, float]) -> float:
    """Great-circle distance from the point to the nearest point of a lat/lon rectangle."""
    lat_lo, lat_hi, lon_lo, lon_hi = b
    if lon_lo <= lon <= lon_hi:
        return EARTH_RADIUS_KM * math.radians(abs(lat - min(max(lat, lat_lo), lat_hi)))
    edge = lon_lo if _lon_delta(lon, lon_lo) < _lon_delta(lon, lon_hi) else lon_hi
    dlon = math.radians(_lon_delta(lon, edge))
    if dlon >= math.pi / 2:
        return min(haversine_km(lat, lon, la, lo) for la in (lat_lo, lat_hi) for lo in (lon_lo, lon_hi))
    # The nearest point of the whole meridian `edge` is at this latitude; distance grows away
    # from it along the meridian, so clamping it into the edge gives the nearest point of the edge.
    nearest = math.degrees(math.atan2(math.tan(math.radians(lat)), math.cos(dlon)))
    return haversine_km(lat, lon, min(max(nearest, lat_lo), lat_hi), edge)


def _lon_delta(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


def _corners_within(lat: float, lon: float, b: tuple[float, float, float, float], radius_km: float) -> bool:
    """Whether the whole (small) rectangle is within the radius. Along a meridian and along a
    parallel the distance from a point has no interior maximum, so its farthest point is a
    corner; the first corner out ends the check (most cells tested are on the boundary)."""
    lat_lo, lat_hi, lon_lo, lon_hi = b
    return all(haversine_km(lat, lon, la, lo) <= radius_km for la in (lat_lo, lat_hi) for lo in (lon_lo, lon_hi))


def _stop_level(radius_km: float) -> int:
    """The indexed level whose cells are about radius/CELLS_PER_RADIUS tall."""
    target_deg = radius_km / CELLS_PER_RADIUS / 111.2
    level = int(math.log2(180.0 / max(target_deg, 1e-9)))
    level += (level - MIN_LEVEL) % STEP  # round up to an indexed level
    return max(MIN_LEVEL + STEP, min(MAX_LEVEL, level))


def _bbox(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """Latitude and longitude bounds of the circle (longitudes unbounded near a pole)."""
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    lat_lo, lat_hi = lat - dlat, lat + dlat
    if lat_lo <= -90 or lat_hi >= 90:
        return max(lat_lo, -90.0), min(lat_hi, 90.0), -180.0, 180.0
    dlon = math.degrees(math.asin(min(1.0, math.sin(radius_km / EARTH_RADIUS_KM)
                                      / math.cos(math.radians(lat)))))
    return lat_lo, lat_hi, lon - dlon, lon + dlon


def _child_range(lo: float, hi: float, start: float, size: float, k: int) -> range:
    """Indexes of the k children (of width size/k from `start`) that overlap [lo, hi]."""
    width = size / k
    first = max(0, int((lo - start) // width))
    last = min(k - 1, int((hi - start) // width))
    return range(first, last + 1) if first <= last else range(0)


@lru_cache(maxsize=256)
def cover(lat: float, lon: float, radius_km: float) -> Cover:
    stop = _stop_level(radius_km)
    lat_lo, lat_hi, lon_lo, lon_hi = _bbox(lat, lon, radius_km)
    wraps = lon_lo < -180 or lon_hi > 180  # across the antimeridian: no longitude pruning
    inside: list[str] = []
    boundary: list[str] = []
    n = 1 << MIN_LEVEL
    pending = [(MIN_LEVEL, x, y) for x in range(n) for y in range(n)]
    k = 1 << STEP
    while pending:
        level, x, y = pending.pop()
        b = _bounds(level, x, y)
        if _min_distance(lat, lon, b) > radius_km:
            continue
        if _corners_within(lat, lon, b, radius_km):
            inside.append(f"{level}/{x}/{y}")
        elif level >= stop:
            boundary.append(f"{level}/{x}/{y}")
        else:
            xs = range(k) if wraps else _child_range(lon_lo, lon_hi, b[2], b[3] - b[2], k)
            ys = _child_range(lat_lo, lat_hi, b[0], b[1] - b[0], k)
            pending.extend((level + STEP, k * x + dx, k * y + dy) for dx in xs for dy in ys)
    return Cover(lat, lon, radius_km, tuple(sorted(inside)), tuple(sorted(boundary)))
