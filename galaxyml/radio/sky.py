# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated radio skies (point and compact Gaussian sources) and noisy visibilities."""

import numpy as np
from astropy import units as u
from astropy.table import QTable

from ..exceptions import InvalidParameterError
from ..psf.models import GAUSSIAN_FWHM_TO_SIGMA

__all__ = ["simulate_sky", "add_visibility_noise"]


def simulate_sky(grid, n_point=10, n_gaussian=2, flux_range=(1.0, 10.0), fwhm_range=(1.0, 2.0),
                 margin=2, min_separation=3.0, seed=None):
    """A sky of point sources and compact Gaussian sources on a grid.

    Point sources sit on pixel centres (the model a sparse solver can
    recover exactly); Gaussian sources are centred on pixels and cut at
    three sigma.  Fluxes are log-uniform in ``flux_range``.

    Parameters
    ----------
    grid : `~galaxyml.radio.SkyGrid`
        The grid.
    n_point, n_gaussian : int
        Numbers of sources.
    flux_range : tuple of float
        Total flux limits in Jy.
    fwhm_range : tuple of float
        FWHM limits of the Gaussian sources, in pixels.
    margin : int
        Pixels kept free along the edges.
    min_separation : float
        Smallest distance between two sources, in pixels (sources closer
        than the array's resolution cannot be told apart by any method).
    seed : int, optional
        Seed.

    Returns
    -------
    sky : `~numpy.ndarray`
        (ny, nx) flux per pixel in Jy.
    catalog : `~astropy.table.QTable`
        ``x``, ``y`` (pixels), ``flux`` (Jy), ``kind``, ``fwhm`` (pix; 0 for points).
    """
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    n = n_point + n_gaussian
    x, y = _positions(rng, n, (ny, nx), margin, min_separation)
    low, high = flux_range
    flux = np.exp(rng.uniform(np.log(low), np.log(high), n))
    fwhm = np.r_[np.zeros(n_point), rng.uniform(*fwhm_range, n_gaussian)]
    sky = np.zeros(grid.shape)
    yy, xx = np.indices(grid.shape)
    for k in range(n):
        if fwhm[k] == 0:
            sky[y[k], x[k]] += flux[k]
            continue
        sigma = fwhm[k] * GAUSSIAN_FWHM_TO_SIGMA
        r2 = (xx - x[k]) ** 2 + (yy - y[k]) ** 2
        profile = np.where(r2 <= (3 * sigma) ** 2, np.exp(-r2 / (2 * sigma ** 2)), 0.0)
        sky += flux[k] * profile / profile.sum()
    catalog = QTable({"x": x, "y": y, "flux": flux * u.Jy,
                      "kind": ["point"] * n_point + ["gaussian"] * n_gaussian,
                      "fwhm": fwhm * u.pix})
    return sky, catalog


def _positions(rng, n, shape, margin, min_separation):
    """Pixel positions of ``n`` sources at least ``min_separation`` apart."""
    ny, nx = shape
    x, y = [], []
    for _ in range(1000 * max(n, 1)):
        if len(x) == n:
            break
        cx, cy = rng.integers(margin, nx - margin), rng.integers(margin, ny - margin)
        if all(np.hypot(cx - px, cy - py) >= min_separation for px, py in zip(x, y)):
            x.append(cx)
            y.append(cy)
    if len(x) < n:
        raise InvalidParameterError(f"cannot place {n} sources {min_separation} pixels apart on a "
                                    f"{shape} grid")
    return np.array(x), np.array(y)


def add_visibility_noise(visibilities, snr, seed=None):
    """Complex Gaussian noise with rms(V) / rms(noise) = ``snr``.

    Returns
    -------
    noisy : `~numpy.ndarray`
        complex128.
    sigma : float
        Noise standard deviation per complex visibility (Jy).
    """
    if not snr > 0:
        raise InvalidParameterError(f"snr must be positive, not {snr}")
    visibilities = np.asarray(visibilities)
    sigma = np.sqrt(np.mean(np.abs(visibilities) ** 2)) / snr
    rng = np.random.default_rng(seed)
    noise = (rng.normal(size=visibilities.shape) + 1j * rng.normal(size=visibilities.shape))
    return visibilities + noise * sigma / np.sqrt(2), float(sigma)
