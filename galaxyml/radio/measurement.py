# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The interferometric measurement operator between a sky grid and visibilities."""

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.wcs import WCS

from ..exceptions import InvalidParameterError, ShapeMismatchError
from .array import antenna_table, baselines

__all__ = ["SkyGrid", "CelestialGrid", "MeasurementOperator", "imaging_weights"]


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

    _ctype = ("ALON-SIN", "ALAT-SIN")

    def __init__(self, shape, pixel_scale, pointing=(0 * u.deg, 90 * u.deg)):
        shape = (shape, shape) if np.isscalar(shape) else tuple(shape)
        self.shape = tuple(int(v) for v in shape)
        if min(self.shape) < 1:
            raise InvalidParameterError(f"a grid needs at least one pixel, not {self.shape}")
        self.pixel_scale = u.Quantity(pixel_scale, u.deg)
        if not self.pixel_scale.value > 0:
            raise InvalidParameterError(f"pixel_scale must be positive, not {pixel_scale}")
        self.pointing = tuple(u.Quantity(v, u.deg) for v in pointing)
        self.wcs = self._make_wcs()
        if not np.all(np.isfinite(self.directions())):
            raise InvalidParameterError(f"a grid of {self.shape} pixels of {self.pixel_scale} "
                                        f"around {self._centre_text()} extends beyond "
                                        "the horizon of its projection")

    def _make_wcs(self):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = list(self._ctype)
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.crval = [self.pointing[0].value, self.pointing[1].value]
        wcs.wcs.crpix = [(self.shape[1] + 1) / 2, (self.shape[0] + 1) / 2]
        wcs.wcs.cdelt = [-self.pixel_scale.value, self.pixel_scale.value]
        wcs.wcs.set()
        return wcs

    def _centre_text(self):
        return f"elevation {self.pointing[1]}"

    def _vectors(self, x, y):
        """Unit vectors of pixel positions in the grid's frame (here east, north, up)."""
        azimuth, elevation = self.wcs.wcs_pix2world(x, y, 0)
        with np.errstate(invalid="ignore"):
            vectors = _unit_vectors(azimuth, elevation)
        vectors[np.asarray(elevation) < 0] = np.nan
        return vectors

    @property
    def n_pixels(self):
        return self.shape[0] * self.shape[1]

    def __repr__(self):
        return (f"<SkyGrid shape={self.shape} pixel_scale={self.pixel_scale:.3g} "
                f"pointing=(az {self.pointing[0]:.1f}, el {self.pointing[1]:.1f})>")

    def directions(self):
        """Unit vectors of the pixel centres, (n_pixels, 3), rows in C order (grid's frame)."""
        yy, xx = np.indices(self.shape)
        return self._vectors(xx.ravel().astype(float), yy.ravel().astype(float))

    def pixel_tangents(self):
        """Change of direction per pixel step in x and in y, at the centre."""
        cy, cx = (self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2
        step = 1e-3
        points = np.array([[cx - step, cy], [cx + step, cy], [cx, cy - step], [cx, cy + step]])
        vectors = self._vectors(points[:, 0], points[:, 1])
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


class CelestialGrid(SkyGrid):
    """A square pixel grid around a phase centre in equatorial coordinates (``RA---SIN``).

    The frame of its direction vectors is the one of the visibilities'
    (u, v, w): (l, m, n), with l towards the east and m towards the north
    at the phase centre, so that a pixel's phase is
    u l + v m + w (n - 1).  This is the grid for observed visibilities
    (see `MeasurementOperator.from_visibilities`).

    Parameters
    ----------
    shape : int or tuple of int
        (ny, nx) pixels.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel (the cell).
    centre : `~astropy.coordinates.SkyCoord`
        The phase centre.
    """

    _ctype = ("RA---SIN", "DEC--SIN")

    def __init__(self, shape, pixel_scale, centre):
        if not isinstance(centre, SkyCoord):
            raise InvalidParameterError(f"centre must be a SkyCoord, not {type(centre).__name__}")
        self.centre = centre
        equatorial = centre.icrs if centre.frame.name not in ("icrs", "fk5") else centre
        super().__init__(shape, pixel_scale, (equatorial.spherical.lon, equatorial.spherical.lat))

    def _make_wcs(self):
        wcs = super()._make_wcs()
        # The phase centre on pixel (N // 2) counted from 0, as WSClean and CASA place it.
        wcs.wcs.crpix = [self.shape[1] // 2 + 1, self.shape[0] // 2 + 1]
        wcs.wcs.radesys = self.centre.frame.name.upper() if self.centre.frame.name in (
            "icrs", "fk5") else "ICRS"
        if wcs.wcs.radesys == "FK5":
            wcs.wcs.equinox = self.centre.equinox.jyear
        wcs.wcs.set()
        return wcs

    def _centre_text(self):
        return f"the phase centre {self.centre.to_string('hmsdms')}"

    def __repr__(self):
        return (f"<CelestialGrid shape={self.shape} pixel_scale={self.pixel_scale.to(u.arcsec):.3g}"
                f" centre={self.centre.to_string('hmsdms')}>")

    def _vectors(self, x, y):
        # A SIN projection's intermediate coordinates are the direction cosines l and m.
        intermediate = self.wcs.wcs.cdelt * (np.column_stack([x, y]) + 1 - self.wcs.wcs.crpix)
        l, m = np.radians(intermediate).T
        with np.errstate(invalid="ignore"):
            n = np.sqrt(1 - l ** 2 - m ** 2)
        return np.column_stack([l, m, n])

    def centre_direction(self):
        return np.array([0.0, 0.0, 1.0])


class MeasurementOperator:
    """Visibilities of a sky grid seen by an array: V = Phi x.

    Phi[k, j] = exp(-2 pi i (u_k l_j + v_k m_j + w_k (n_j - 1))), with
    (u, v, w) the k-th baseline in wavelengths and (l, m, n) the
    direction of pixel j relative to the phase centre.  The solvers use
    the weighted real form A = sqrt(W) [Re Phi; Im Phi]
    (2 n_visibilities x n_pixels) acting on a real sky, with data
    sqrt(W) [Re V; Im V] (`real_data`), so that least squares on it is the
    weighted fit and A^T y / sum(W) is the dirty image.  Rows are
    generated in blocks, so the float matrix need never be held whole.

    Build it from an antenna table (a snapshot of a station, below) or
    from observed visibilities (`from_visibilities`).

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
        frequency = u.Quantity(frequency, u.MHz)
        if not frequency.value > 0:
            raise InvalidParameterError(f"frequency must be positive, not {frequency}")
        vectors, self.pairs = baselines(self.antennas)
        self.wavelength = (const.c / frequency).to(u.m)
        self._set_up((vectors / self.wavelength).decompose().value, grid, frequency)

    @classmethod
    def from_visibilities(cls, visibilities, grid, weighting="natural"):
        """The operator of observed visibilities, on a `CelestialGrid` at their phase centre.

        Parameters
        ----------
        visibilities : `~galaxyml.radio.Visibilities`
        grid : `CelestialGrid`
        weighting : {'natural', 'uniform'}
            Natural: the visibilities' own weights (the lowest noise).
            Uniform: each weight divided by the summed weight of its cell
            of the (u, v) grid that the image's size implies (cell
            1 / field of view), so that densely sampled short spacings do
            not dominate: a sharper beam and higher noise.
        """
        if not isinstance(grid, CelestialGrid):
            raise InvalidParameterError("observed visibilities are imaged on a CelestialGrid "
                                        f"around their phase centre, not a {type(grid).__name__}")
        operator = cls.__new__(cls)
        operator.antennas, operator.pairs = None, visibilities.antennas
        operator.wavelength = (const.c / visibilities.frequency).to(u.m)
        weights = imaging_weights(visibilities, grid, weighting)
        operator._set_up(visibilities.uvw, grid, visibilities.frequency, weights)
        return operator

    def _set_up(self, baselines_in_wavelengths, grid, frequency, weights=None):
        self.grid = grid
        self.frequency = frequency
        self._baselines = np.asarray(baselines_in_wavelengths, dtype=float)
        self.weights = (np.ones(len(self._baselines)) if weights is None
                        else np.asarray(weights, dtype=float))
        self._row_scale = np.sqrt(self.weights)
        self._offsets = grid.directions() - grid.centre_direction()

    @property
    def n_baselines(self):
        """The number of visibilities (baselines x times x channels)."""
        return len(self._baselines)

    @property
    def weight_sum(self):
        """The summed weights: a dirty image's normalisation."""
        return float(self.weights.sum())

    @property
    def shape(self):
        """(2 n_baselines, n_pixels): the real form's shape."""
        return (2 * self.n_baselines, self.grid.n_pixels)

    def __repr__(self):
        frequency = np.median(self.frequency)
        return (f"<MeasurementOperator visibilities={self.n_baselines} "
                f"frequency={frequency:.4g} grid={self.grid.shape}>")

    def _phases(self, rows=slice(None), columns=slice(None)):
        return 2 * np.pi * (self._baselines[rows] @ self._offsets[columns].T)

    def complex_matrix(self, rows=slice(None), columns=slice(None)):
        """Phi (or some of its rows or columns), complex128, unweighted."""
        return np.exp(-1j * self._phases(rows, columns))

    def columns(self, index, dtype=np.float32):
        """Columns of the real form A, shape (2 n_baselines, len(index))."""
        phases = self._phases(columns=np.asarray(index, dtype=int))
        scale = self._row_scale[:, None]
        return np.concatenate([scale * np.cos(phases), -scale * np.sin(phases)]).astype(dtype)

    def row_blocks(self, block_rows=1024, dtype=np.float32):
        """The real form A as consecutive blocks of rows (Re rows, then Im rows)."""
        for part in (np.cos, lambda phase: -np.sin(phase)):
            for start in range(0, self.n_baselines, block_rows):
                rows = slice(start, min(start + block_rows, self.n_baselines))
                yield (self._row_scale[rows, None] * part(self._phases(rows))).astype(dtype)

    def matrix(self, dtype=np.float32):
        """The real form A, whole."""
        return np.concatenate(list(self.row_blocks(dtype=dtype)))

    def visibilities(self, sky):
        """Complex model visibilities of a sky (flat or (ny, nx), per-pixel flux), Phi x."""
        sky = np.asarray(sky, dtype=float).ravel()
        if sky.size != self.grid.n_pixels:
            raise ShapeMismatchError(f"a sky of {sky.size} pixels does not match the grid "
                                     f"{self.grid.shape}")
        out = np.empty(self.n_baselines, complex)
        nonzero = np.flatnonzero(sky)
        block = max(1, (1 << 22) // max(len(nonzero), 1))  # 64 MiB of complex phases at most
        for start in range(0, self.n_baselines, block):
            rows = slice(start, start + block)
            out[rows] = self.complex_matrix(rows, nonzero) @ sky[nonzero]
        return out

    def real_data(self, visibilities):
        """sqrt(W) [Re V; Im V], the data of the real form."""
        visibilities = np.asarray(visibilities)
        if visibilities.shape != (self.n_baselines,):
            raise ShapeMismatchError(f"{visibilities.shape[0] if visibilities.ndim else 0} "
                                     f"visibilities for an operator of {self.n_baselines}")
        return np.concatenate([self._row_scale * visibilities.real,
                               self._row_scale * visibilities.imag])


def imaging_weights(visibilities, grid, weighting="natural"):
    """Natural or uniform imaging weights of visibilities for an image grid.

    Parameters
    ----------
    visibilities : `~galaxyml.radio.Visibilities`
    grid : `CelestialGrid`
    weighting : {'natural', 'uniform'}

    Returns
    -------
    weights : `~numpy.ndarray`
    """
    weights = np.asarray(visibilities.weights, dtype=float)
    if weighting == "natural":
        return weights.copy()
    if weighting != "uniform":
        raise InvalidParameterError(f"weighting must be 'natural' or 'uniform', not {weighting!r}")
    # The (u, v) cell of an image of N pixels of size d is 1 / (N d); each visibility
    # also samples its Hermitian point (-u, -v).
    field = np.radians(grid.pixel_scale.to_value(u.deg)) * np.array(grid.shape[::-1])
    cells = np.floor(visibilities.uvw[:, :2] * field).astype(np.int64)
    mirrored = np.floor(-visibilities.uvw[:, :2] * field).astype(np.int64)
    keys, inverse = np.unique(np.vstack([cells, mirrored]), axis=0, return_inverse=True)
    density = np.bincount(inverse.ravel(), weights=np.r_[weights, weights], minlength=len(keys))
    return weights / density[inverse.ravel()[:len(weights)]]
