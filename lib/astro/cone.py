"""Cone search in SQL, pruned by HEALPix partition.

``CONE(ra_deg, dec_deg, radius_deg)`` in a ``gaialake sql`` query expands to
``(hpx IN (<pixels at catalog.partition_order overlapping the cone>) AND <exact angular
distance <= radius>)``: the ``IN`` list of literals on the partition column lets Spark read only
those partitions, and the Delta statistics on ``hpx29`` prune files inside them.
``CONE(ra, dec, r, alias)`` qualifies the columns (``alias.ra``) for joins.
"""
from __future__ import annotations

import re

from gaialake.astro.healpix import disc_pixels

__all__ = ["cone_predicate", "expand_cones"]

_CONE = re.compile(r"\bCONE\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)"
                   r"\s*(?:,\s*([A-Za-z_][A-Za-z0-9_]*)\s*)?\)", re.IGNORECASE)


def cone_predicate(ra_deg: float, dec_deg: float, radius_deg: float, order: int,
                   alias: str | None = None) -> str:
    """SQL predicate selecting the stars within ``radius_deg`` of (ra_deg, dec_deg)."""
    if not (0 <= ra_deg < 360 and -90 <= dec_deg <= 90 and 0 < radius_deg <= 180):
        raise ValueError(f"CONE({ra_deg}, {dec_deg}, {radius_deg}): need 0 <= ra < 360, "
                         f"-90 <= dec <= 90, 0 < radius <= 180 (deg)")
    p = f"{alias}." if alias else ""
    pixels = ", ".join(str(int(x)) for x in disc_pixels(ra_deg, dec_deg, radius_deg, order))
    # haversine: stable for small radii
    dist = (f"2 * degrees(asin(sqrt(pow(sin(radians({p}dec - {dec_deg}) / 2), 2) + "
            f"cos(radians({dec_deg})) * cos(radians({p}dec)) * "
            f"pow(sin(radians({p}ra - {ra_deg}) / 2), 2))))")
    return f"({p}hpx IN ({pixels}) AND {dist} <= {radius_deg})"


def expand_cones(sql: str, order: int) -> str:
    """Replace every ``CONE(ra, dec, radius[, alias])`` in ``sql`` by its predicate."""
    return _CONE.sub(lambda m: cone_predicate(float(m[1]), float(m[2]), float(m[3]), order, m[4]),
                     sql)
