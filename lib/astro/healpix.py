"""HEALPix arithmetic in one place (nested scheme throughout).

- ``hpx29``: the order-29 nested pixel of (ra, dec), as HATS' ``_healpix_29``.
- ``hpx``: the partition column, ``hpx29 >> 2*(29 - k)`` at ``catalog.partition_order`` k.
- ``source_id >> 35``: the level-12 pixel where Gaia first placed the source.
"""
from __future__ import annotations

import healpy as hp
import numpy as np

__all__ = ["MAX_ORDER", "radec_to_hpx29", "hpx29_to_order", "pixel_of", "source_id_pixel12",
           "disc_pixels", "order_npix", "pixel_center_radec"]

MAX_ORDER = 29


def radec_to_hpx29(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Order-29 nested pixel (int64) of positions in degrees."""
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    return hp.ang2pix(1 << MAX_ORDER, ra, dec, nest=True, lonlat=True).astype(np.int64)


def hpx29_to_order(hpx29: np.ndarray | int, order: int) -> np.ndarray | int:
    """The pixel at ``order`` containing an order-29 pixel."""
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"HEALPix order must be in [0, 29], got {order}")
    return np.right_shift(hpx29, 2 * (MAX_ORDER - order))


def pixel_of(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> np.ndarray:
    """Nested pixel at ``order`` of positions in degrees."""
    return hp.ang2pix(1 << order, np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64),
                      nest=True, lonlat=True).astype(np.int64)


def source_id_pixel12(source_id: np.ndarray | int) -> np.ndarray | int:
    """Level-12 nested pixel encoded in a Gaia ``source_id``."""
    return np.right_shift(source_id, 35)


def order_npix(order: int) -> int:
    """Number of HEALPix pixels at ``order`` (12 * 4**order)."""
    return 12 * 4**order


def disc_pixels(ra_deg: float, dec_deg: float, radius_deg: float, order: int) -> np.ndarray:
    """Pixels at ``order`` overlapping a cone (inclusive: may include a few outside it)."""
    vec = hp.ang2vec(ra_deg, dec_deg, lonlat=True)
    return np.sort(hp.query_disc(1 << order, vec, np.radians(radius_deg), inclusive=True, nest=True))


def pixel_center_radec(pixels: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (ra, dec in deg) of nested pixels at ``order``."""
    return hp.pix2ang(1 << order, np.asarray(pixels), nest=True, lonlat=True)
