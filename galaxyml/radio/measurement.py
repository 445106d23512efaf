# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The interferometric measurement operator between a sky grid and visibilities."""

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.wcs import WCS

from ..exceptions import InvalidParameterError, ShapeMismatchError
from .array import antenna_table, baselines

__all__ = ["SkyGrid", "MeasurementOperator"]


def _unit_vectors(azimuth, elevation):
    """East-north-up unit vectors of directions (azimuth from north through east)."""
    azimuth, elevation = np.radians(azimuth), np.radians(elevation)
    return np.stack([np.cos(elevation) * np.sin(azimuth), np.cos(elevation) * np.cos(azimuth),
                     np.sin(elevation)], axis=-1)


class SkyGrid:
    """A square pixel grid on the local sky, in a SIN (orthographic) projection.

    Positions are local horizontal coordinates of one snapshot: azimuth
    (from north through east) as the WCS longitude and elevation as its
    latitude (``ALON-SIN``, ``ALAT-SIN``).  A SIN projection is the natural
    one for an interferometer: its intermediate coordinates are the
    direction cosines l and m.  For equatorial coordinates, convert the
    pointing with astropy's `~astropy.coordinates.AltAz` at the time and
    site of the observation.

    Parameters
    ----------
    shape : int or tuple of int
        (ny, nx) pixels.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel at the centre.
    pointing : tuple of `~astropy.units.Quantity`
        (azimuth, elevation) of the grid's centre, the phase centre; the
        zenith by default.
    """

    def __init__(self, shape, pixel_scale, pointing=(0 * u.deg, 90 * u.deg)):
        shape = (shape, shape) if np.isscalar(shape) else tuple(shape)
        self.shape = tuple(int(v) for v in shape)
        self.pixel_scale = u.Quantity(pixel_scale, u.deg)
        self.pointing = tuple(u.Quantity(v, u.deg) for v in pointing)
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["ALON-SIN", "ALAT-SIN"]
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.crval = [self.pointing[0].value, self.pointing[1].value]
        wcs.wcs.crpix = [(self.shape[1] + 1) / 2, (self.shape[0] + 1) / 2]
        wcs.wcs.cdelt = [-self.pixel_scale.value, self.pixel_scale.value]
        wcs.wcs.set()
        self.wcs = wcs
        if not np.all(np.isfinite(self.directions())):
            raise InvalidParameterError(f"a grid of {self.shape} pixels of {self.pixel_scale} "
                                        f"around elevation {self.pointing[1]} extends beyond "
                                        "the horizon")

    @property
    def n_pixels(self):
        return self.shape[0] * self.shape[1]

    def __repr__(self):
        return (f"<SkyGrid shape={self.shape} pixel_scale={self.pixel_scale:.3g} "
                f"pointing=(az {self.pointing[0]:.1f}, el {self.pointing[1]:.1f})>")

    def directions(self):
        """East-north-up unit vectors of the pixel centres, (n_pixels, 3), rows in C order."""
        yy, xx = np.indices(self.shape)
        azimuth, elevation = self.wcs.wcs_pix2world(xx.ravel(), yy.ravel(), 0)
        with np.errstate(invalid="ignore"):
            vectors = _unit_vectors(azimuth, elevation)
        vectors[elevation < 0] = np.nan
        return vectors

    def pixel_tangents(self):
        """East-north-up change of direction per pixel step in x and in y, at the centre."""
        cy, cx = (self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2
        step = 1e-3
        points = np.array([[cx - step, cy], [cx + step, cy], [cx, cy - step], [cx, cy + step]])
        vectors = _unit_vectors(*self.wcs.wcs_pix2world(points[:, 0], points[:, 1], 0))
        return (vectors[1] - vectors[0]) / (2 * step), (vectors[3] - vectors[2]) / (2 * step)

    def centre_direction(self):
        """East-north-up unit vector of the pointing."""
        return _unit_vectors(self.pointing[0].value, self.pointing[1].value)

    def to_ccddata(self, values, unit=u.Jy, meta=None):
        """A flat or (ny, nx) sky image as a `~astropy.nddata.CCDData` with this grid's WCS.

        ``meta`` (FITS keywords of at most 8 characters, any case) becomes a
        `~astropy.io.fits.Header`, so that the image can be written with
        ``.write``.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.size != self.n_pixels:
            raise ShapeMismatchError(f"{values.size} values do not fill a {self.shape} grid")
        header = fits.Header()
        for key, value in (meta or {}).items():
            header[key.upper()] = value.item() if isinstance(value, np.generic) else value
        return CCDData(values.reshape(self.shape), unit=unit, wcs=self.wcs.deepcopy(),
                       meta=header)


class MeasurementOperator:
    """Visibilities of a sky grid seen by an array: V = Phi x.

    Phi[(p, q), k] = exp(-2 pi i b_pq . (s_k - s_0) / lambda)
    = exp(-2 pi i (u l_k + v m_k + w (n_k - 1))), with b_pq the baseline
    between antennas p and q, s_k the direction of pixel k and s_0 the
    phase centre.  The solvers use the real form A = [Re Phi; Im Phi]
    (2 n_baselines x n_pixels) acting on a real sky, with data
    [Re V; Im V].  Rows are generated in blocks, so the float matrix need
    never be held whole.

    Parameters
    ----------
    antennas : `~astropy.table.QTable`
        Antenna table (see `~galaxyml.radio.antenna_table`).
    frequency : `~astropy.units.Quantity`
        Observing frequency.
    grid : `SkyGrid`
        The sky grid.
    """

    def __init__(self, antennas, frequency, grid):
        self.antennas = antenna_table(antennas)
        self.frequency = u.Quantity(frequency, u.MHz)
        if not self.frequency.value > 0:
            raise InvalidParameterError(f"frequency must be positive, not {frequency}")
        self.grid = grid
        vectors, self.pairs = baselines(self.antennas)
        self.wavelength = (const.c / self.frequency).to(u.m)
        self._baselines = (vectors / self.wavelength).decompose().value  # in wavelengths
        self._offsets = grid.directions() - grid.centre_direction()

    @property
    def n_baselines(self):
        return len(self._baselines)

    @property
    def shape(self):
        """(2 n_baselines, n_pixels): the real form's shape."""
        return (2 * self.n_baselines, self.grid.n_pixels)

    def __repr__(self):
        return (f"<MeasurementOperator antennas={len(self.antennas)} "
                f"baselines={self.n_baselines} frequency={self.frequency:.4g} "
                f"grid={self.grid.shape}>")

    def _phases(self, rows=slice(None), columns=slice(None)):
        return 2 * np.pi * (self._baselines[rows] @ self._offsets[columns].T)

    def complex_matrix(self, rows=slice(None), columns=slice(None)):
        """Phi (or some of its rows or columns), complex128."""
        return np.exp(-1j * self._phases(rows, columns))

    def columns(self, index, dtype=np.float32):
        """Columns of the real form A, shape (2 n_baselines, len(index))."""
        phases = self._phases(columns=np.asarray(index, dtype=int))
        return np.concatenate([np.cos(phases), -np.sin(phases)]).astype(dtype)

    def row_blocks(self, block_rows=1024, dtype=np.float32):
        """The real form A as consecutive blocks of rows (Re rows, then Im rows)."""
        for part in (np.cos, lambda phase: -np.sin(phase)):
            for start in range(0, self.n_baselines, block_rows):
                rows = slice(start, min(start + block_rows, self.n_baselines))
                yield part(self._phases(rows)).astype(dtype)

    def matrix(self, dtype=np.float32):
        """The real form A, whole."""
        return np.concatenate(list(self.row_blocks(dtype=dtype)))

    def visibilities(self, sky):
        """Complex visibilities of a sky (flat or (ny, nx), per-pixel flux), Phi x."""
        sky = np.asarray(sky, dtype=float).ravel()
        if sky.size != self.grid.n_pixels:
            raise ShapeMismatchError(f"a sky of {sky.size} pixels does not match the grid "
                                     f"{self.grid.shape}")
        return self.complex_matrix() @ sky

    @staticmethod
    def real_data(visibilities):
        """[Re V; Im V], the data of the real form."""
        visibilities = np.asarray(visibilities)
        return np.concatenate([visibilities.real, visibilities.imag])
