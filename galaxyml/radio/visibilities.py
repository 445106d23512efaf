# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Observed visibilities: reading uvfits and Measurement Sets (through pyuvdata)."""

import os
import warnings
from dataclasses import dataclass, replace

import numpy as np
from astropy import constants as const
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time

from ..exceptions import (AllFlaggedError, MissingFileError, UnknownPolarizationError,
                          VisibilityReadError)
from ..utils._optional import optional_import

__all__ = ["Visibilities", "read_visibilities"]

# Stokes I from the two parallel hands: circular feeds (VLBI) or linear ones (MWA, LOFAR).
_PARALLEL_HANDS = (("rr", "ll"), ("xx", "yy"))


@dataclass(frozen=True)
class Visibilities:
    """Calibrated visibilities of one polarisation, one row per baseline, time and channel.

    Attributes
    ----------
    uvw : `~numpy.ndarray`, shape (n, 3)
        Baseline coordinates in wavelengths at each row's frequency, in
        the sign convention V = sum I exp(-2 pi i (u l + v m + w (n - 1)))
        of `~galaxyml.radio.MeasurementOperator` (antenna 1 minus
        antenna 2 for pyuvdata's correlation of antenna 1 with the
        conjugate of antenna 2).
    data : `~numpy.ndarray`, shape (n,)
        Complex visibilities (in ``unit``).
    weights : `~numpy.ndarray`, shape (n,)
        Weights (the file's, proportional to 1 / sigma^2).
    frequency : `~astropy.units.Quantity`, shape (n,)
    time : `~astropy.time.Time`, shape (n,)
    antennas : `~numpy.ndarray`, shape (n, 2)
        Antenna numbers of each baseline.
    phase_centre : `~astropy.coordinates.SkyCoord`
    polarization : str
        ``'I'`` or a correlation such as ``'RR'`` or ``'XX'``.
    unit : `~astropy.units.Unit`
        Jy for flux-calibrated data, dimensionless for uncalibrated ones.
    telescope, source : str
    """

    uvw: np.ndarray
    data: np.ndarray
    weights: np.ndarray
    frequency: u.Quantity
    time: Time
    antennas: np.ndarray
    phase_centre: SkyCoord
    polarization: str = "I"
    unit: u.UnitBase = u.Jy
    telescope: str = ""
    source: str = ""

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return (f"<Visibilities {self.telescope} {self.source} {self.polarization}: {len(self)} "
                f"rows, {np.unique(self.frequency).size} channels around "
                f"{np.median(self.frequency).to(u.GHz):.4g}, longest baseline "
                f"{self.uv_distance.max():.4g} wavelengths>")

    @property
    def uv_distance(self):
        """sqrt(u^2 + v^2) of each row, in wavelengths."""
        return np.hypot(self.uvw[:, 0], self.uvw[:, 1])

    def resolution(self):
        """1 / the longest (u, v) distance: the finest scale the array samples."""
        return (1 / self.uv_distance.max() * u.rad).to(u.arcsec)

    def image_noise(self):
        """The noise of a naturally weighted image, from differences of consecutive integrations.

        For each baseline and channel, the difference d of two consecutive
        integrations holds no sky (the sky changes little between them),
        only noise: E|d|^2 = c (1/w_1 + 1/w_2) for weights w = c' / sigma^2.
        The scale c is the median of |d|^2 / (1/w_1 + 1/w_2) over ln 2
        (|d|^2 of complex Gaussian noise is exponential), robust to the few
        differences that do hold a change; the image's noise is then
        sqrt(c / (2 sum w)).

        Returns
        -------
        sigma : `~astropy.units.Quantity`
            In the visibilities' unit per beam.
        """
        order = np.lexsort((self.time.jd, self.frequency.value, self.antennas[:, 1],
                            self.antennas[:, 0]))
        keys = np.column_stack([self.antennas, self.frequency.value[:, None]])[order]
        same = np.all(keys[1:] == keys[:-1], axis=1)
        if not same.any():
            raise AllFlaggedError("no baseline holds two integrations of one channel, so the "
                                  "noise cannot be estimated from differences")
        data, weights = self.data[order], self.weights[order]
        difference = (data[1:] - data[:-1])[same]
        variance_sum = (1 / weights[1:] + 1 / weights[:-1])[same]
        scale = np.median(np.abs(difference) ** 2 / variance_sum) / np.log(2)
        return np.sqrt(scale / (2 * self.weights.sum())) * self.unit / u.beam

    def select(self, uv_min=None, uv_max=None):
        """The rows whose (u, v) distance lies in [uv_min, uv_max] wavelengths.

        Raises
        ------
        AllFlaggedError
            If no row is left.
        """
        distance = self.uv_distance
        keep = np.ones(len(self), bool)
        if uv_min is not None:
            keep &= distance >= uv_min
        if uv_max is not None:
            keep &= distance <= uv_max
        if not keep.any():
            raise AllFlaggedError(f"no visibility lies between {uv_min} and {uv_max} wavelengths "
                                  f"(the data span {distance.min():.4g} to {distance.max():.4g})")
        return replace(self, uvw=self.uvw[keep], data=self.data[keep],
                       weights=self.weights[keep], frequency=self.frequency[keep],
                       time=self.time[keep], antennas=self.antennas[keep])


def read_visibilities(path, polarization="I", ignore_flags=False, unit=None):
    """Read calibrated visibilities from a uvfits file or a Measurement Set.

    Autocorrelations and flagged rows are dropped, the data are phased to
    the file's phase centre, and (u, v, w) are converted to wavelengths at
    each channel's frequency.  The reading is pyuvdata's (the ``radio``
    extra); its warnings about the file's metadata (telescope frame,
    antenna diameters) are silenced, as they do not concern the
    visibilities.

    Parameters
    ----------
    path : str or path-like
        A ``.uvfits`` file or a Measurement Set directory.
    polarization : str
        ``'I'`` (the mean of the parallel hands, RR and LL or XX and YY,
        or the file's own Stokes I), or one correlation (``'RR'``,
        ``'XX'``, ...).
    ignore_flags : bool
        Keep flagged rows, with their weight where it is positive and 1
        where it is not: for files whose flags are known to be wrong.
    unit : `~astropy.units.Unit` or str, optional
        The visibilities' unit where the file does not say it (uvfits
        files often leave it out); by default the file's, Jy or
        dimensionless (uncalibrated).

    Returns
    -------
    visibilities : `Visibilities`

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    MissingDependencyError
        If pyuvdata is not installed.
    VisibilityReadError
        If the file is truncated, corrupt or not a visibility file, holds
        several phase centres, or is a uvfits file larger than
        ``galaxyml.io.conf.max_fits_bytes``.
    UnknownPolarizationError
        If the file lacks the polarisation asked for.
    AllFlaggedError
        If every visibility is flagged.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"no visibility file at {path}")
    if os.path.isfile(path):
        _check_uvfits_size(path)
    pyuvdata = optional_import("pyuvdata", "reading visibilities", "radio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A Measurement Set of one channel is data, not a calibration table.
            options = {"ignore_single_chan": False} if os.path.isdir(path) else {}
            uvdata = pyuvdata.UVData.from_file(path, **options)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise VisibilityReadError(f"{path} could not be read as visibilities: "
                                  f"{type(exc).__name__}: {exc}") from exc
    visibilities = _from_uvdata(uvdata, path, polarization.upper(), ignore_flags)
    return visibilities if unit is None else replace(visibilities, unit=u.Unit(unit))


def _check_uvfits_size(path):
    """Refuse a file above ``galaxyml.io.conf.max_fits_bytes``, or one whose header promises
    more bytes than it holds (truncated)."""
    from ..io import conf

    if os.path.getsize(path) > int(conf.max_fits_bytes):
        raise VisibilityReadError(f"{path} holds {os.path.getsize(path)} bytes, more than the "
                                  f"{int(conf.max_fits_bytes)} that galaxyml.io.conf."
                                  "max_fits_bytes allows")
    try:
        with warnings.catch_warnings():
            # astropy warns of a truncated file; the error below says it with the sizes.
            warnings.simplefilter("ignore")
            hdus = fits.open(path, memmap=True, lazy_load_hdus=True)
        with hdus:
            header = hdus[0].header
            if not header.get("GROUPS"):
                return
            axes = [header.get(f"NAXIS{k}", 0) for k in range(2, header.get("NAXIS", 0) + 1)]
            group = (int(np.prod(axes)) + header.get("PCOUNT", 0)) * abs(header["BITPIX"]) // 8
            needed = group * header.get("GCOUNT", 1) + len(header.tostring())
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise VisibilityReadError(f"{path} is not a readable uvfits file: {exc}") from exc
    if needed > os.path.getsize(path):
        raise VisibilityReadError(f"{path} is truncated: its header describes {needed} bytes of "
                                  f"groups, the file holds {os.path.getsize(path)}")


def _from_uvdata(uvdata, path, polarization, ignore_flags):
    centres = uvdata.phase_center_catalog
    if len(centres) != 1:
        raise VisibilityReadError(f"{path} holds {len(centres)} phase centres; select one field "
                                  "with pyuvdata first")
    centre = next(iter(centres.values()))
    if centre["cat_type"] == "unprojected":
        uvdata.phase_to_time(Time(np.median(uvdata.time_array), format="jd"))
        centre = next(iter(uvdata.phase_center_catalog.values()))
    cross = uvdata.ant_1_array != uvdata.ant_2_array
    data, weights, flags = _polarization(uvdata, polarization)
    data, weights, flags = data[cross], weights[cross], flags[cross]
    flags |= ~np.isfinite(data)
    if ignore_flags:
        flags = ~np.isfinite(data)
        weights = np.where(weights > 0, weights, 1.0)
    if flags.all():
        hint = "" if ignore_flags else "; ignore_flags=True reads them with weight 1"
        raise AllFlaggedError(f"all {flags.size} cross-correlations of {path} are flagged "
                              f"(or have zero weight){hint}")
    n_freq = data.shape[1]
    frequency = np.broadcast_to(uvdata.freq_array.reshape(1, -1), data.shape)
    # pyuvdata's uvw run from antenna 1 to antenna 2 and its data are <E1 E2*>, so that
    # V = sum I exp(+2 pi i uvw.s): the operator's convention has the opposite sign.
    uvw_metres = -uvdata.uvw_array[cross][:, None, :]
    uvw = uvw_metres * (frequency / const.c.to_value(u.m / u.s))[..., None]
    keep = ~flags
    times = np.repeat(uvdata.time_array[cross][:, None], n_freq, axis=1)
    antennas = np.stack([np.repeat(uvdata.ant_1_array[cross][:, None], n_freq, axis=1),
                         np.repeat(uvdata.ant_2_array[cross][:, None], n_freq, axis=1)], -1)
    frame = centre["cat_frame"] or "icrs"
    phase_centre = SkyCoord(centre["cat_lon"] * u.rad, centre["cat_lat"] * u.rad, frame=frame,
                            equinox=(f"J{centre['cat_epoch']:.1f}" if frame == "fk5" else None))
    return Visibilities(
        uvw=uvw[keep], data=data[keep].astype(np.complex128),
        weights=weights[keep].astype(np.float64), frequency=frequency[keep] * u.Hz,
        time=Time(times[keep], format="jd"), antennas=antennas[keep],
        phase_centre=phase_centre, polarization=polarization,
        unit=u.Jy if str(uvdata.vis_units).lower() == "jy" else u.dimensionless_unscaled,
        telescope=str(uvdata.telescope.name), source=str(centre["cat_name"]))


def _polarization(uvdata, polarization):
    """Data, weights and flags (n_blts, n_freq) of one correlation or of Stokes I."""
    from pyuvdata.utils import polnum2str

    names = [name.lower() for name in polnum2str(uvdata.polarization_array)]

    def plane(name):
        k = names.index(name)
        return (uvdata.data_array[..., k], uvdata.nsample_array[..., k].astype(float),
                uvdata.flag_array[..., k] | (uvdata.nsample_array[..., k] <= 0))

    wanted = polarization.lower()
    if wanted in names:
        return plane(wanted)
    if wanted == "i":
        for first, second in _PARALLEL_HANDS:
            if first in names and second in names:
                (da, wa, fa), (db, wb, fb) = plane(first), plane(second)
                # I = (a + b) / 2, so sigma_I^2 = (sigma_a^2 + sigma_b^2) / 4.
                with np.errstate(divide="ignore", invalid="ignore"):
                    weights = np.where(wa + wb > 0, 4 * wa * wb / (wa + wb), 0.0)
                return (da + db) / 2, weights, fa | fb
    raise UnknownPolarizationError(f"the visibilities hold {[n.upper() for n in names]}, "
                                   f"not {polarization}" + (" nor both parallel hands"
                                                            if wanted == "i" else ""))
