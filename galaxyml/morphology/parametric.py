# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The classical two-component AGN decomposition: a point source plus a Sérsic host.

`fit_point_source_sersic` fits an image with the PSF (the point source,
photutils' `~photutils.psf.ImagePSF`) plus a Sérsic profile convolved with
the same PSF (`ConvolvedSersic2D`), by least squares weighted by the
uncertainty plane (astropy's `~astropy.modeling.fitting.TRFLSQFitter`),
starting from the segmentation of the image: the baseline that PSFGAN is
measured against (Stark et al. 2018 used GALFIT).  No external binary is
needed.
"""

import functools
import json
import warnings
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.modeling import Fittable2DModel, Parameter
from astropy.modeling.fitting import TRFLSQFitter
from astropy.modeling.models import Const2D, Sersic2D
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from photutils.psf import ImagePSF
from scipy.special import gamma, gammaincinv

from ..io.sdss import nanomaggies_to_mag
from ..sources import source_catalog
from .decomposition import (_MAG_PER_RELATIVE_FLUX, FLAG_FAILED, FLAG_PS_FIT,
                            DecompositionErrors, SourceBox, decide_and_measure,
                            prepare_agn_images)
from .pointsource import PointSourceFit

__all__ = ["ConvolvedSersic2D", "sersic_total_flux", "fit_point_source_sersic",
           "fit_error_model"]

_N_RANGE = (0.3, 8.0)
_MAX_ELLIP = 0.9
_MAX_SHIFT = 2.0  # pixels the point source may move from its initial position


class ConvolvedSersic2D(Fittable2DModel):
    """A Sérsic profile (`~astropy.modeling.models.Sersic2D`) convolved with a PSF.

    Evaluated on a regular pixel grid (``x``, ``y`` as from `numpy.mgrid`):
    the profile is taken at the pixel centres, and averaged over
    ``oversample`` x ``oversample`` sub-pixels in the 7 x 7 pixels around
    its centre, where it is steepest; then it is convolved with the PSF
    kernel by FFT.  The parameters are those of
    `~astropy.modeling.models.Sersic2D` (``theta`` in radians).

    Parameters
    ----------
    psf : 2-D array
        The PSF kernel, odd sides, unit sum.
    oversample : int
        Sub-pixels per pixel side near the centre.
    """

    amplitude = Parameter(default=1.0, description="surface brightness at r_eff")
    r_eff = Parameter(default=1.0, description="effective (half-light) radius, pixels")
    n = Parameter(default=4.0, description="Sérsic index")
    x_0 = Parameter(default=0.0)
    y_0 = Parameter(default=0.0)
    ellip = Parameter(default=0.0)
    theta = Parameter(default=0.0, description="rotation angle, radians")

    _CORE = 3  # half-side, in pixels, of the oversampled core

    def __init__(self, psf, oversample=5, **kwargs):
        self.psf = np.asarray(psf, float)
        self.oversample = int(oversample)
        self._kernel_ffts = {}
        super().__init__(**kwargs)

    def evaluate(self, x, y, amplitude, r_eff, n, x_0, y_0, ellip, theta):
        params = (amplitude, r_eff, n, x_0, y_0, ellip, theta)
        pixels = Sersic2D.evaluate(x, y, *params)
        self._oversample_core(pixels, x, y, params)
        return self._convolve(pixels)

    def _oversample_core(self, pixels, x, y, params):
        """Replace the pixels around the centre by their sub-pixel averages, in place."""
        k, half = self.oversample, self._CORE
        ny, nx = pixels.shape
        cx = int(round(float(params[3][0] if np.ndim(params[3]) else params[3]) - x[0, 0]))
        cy = int(round(float(params[4][0] if np.ndim(params[4]) else params[4]) - y[0, 0]))
        ys = slice(min(max(cy - half, 0), ny), min(max(cy + half + 1, 0), ny))
        xs = slice(min(max(cx - half, 0), nx), min(max(cx + half + 1, 0), nx))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            return
        offsets = (np.arange(k) + 0.5) / k - 0.5
        fine_x = (x[0, xs][:, None] + offsets).ravel()
        fine_y = (y[ys, 0][:, None] + offsets).ravel()
        grid_x, grid_y = np.meshgrid(fine_x, fine_y)
        fine = Sersic2D.evaluate(grid_x, grid_y, *params)
        pixels[ys, xs] = fine.reshape(ys.stop - ys.start, k, xs.stop - xs.start, k).mean(
            axis=(1, 3))

    def _convolve(self, image):
        """``image`` convolved with the PSF ('same' size), with the kernel's FFT kept."""
        ky, kx = self.psf.shape
        shape = (image.shape[0] + ky - 1, image.shape[1] + kx - 1)
        if shape not in self._kernel_ffts:
            self._kernel_ffts[shape] = np.fft.rfft2(self.psf, shape)
        full = np.fft.irfft2(np.fft.rfft2(image, shape) * self._kernel_ffts[shape], shape)
        return full[ky // 2:ky // 2 + image.shape[0], kx // 2:kx // 2 + image.shape[1]]


def sersic_total_flux(amplitude, r_eff, n, ellip):
    """Total flux of a Sérsic profile of `~astropy.modeling.models.Sersic2D` parameters.

    L = 2 pi n I_e r_e^2 exp(b_n) b_n^(-2n) Gamma(2n) (1 - ellip), with
    b_n such that r_e encloses half the light.
    """
    b_n = gammaincinv(2 * n, 0.5)
    return (2 * np.pi * n * amplitude * r_eff ** 2 * np.exp(b_n) * b_n ** (-2 * n)
            * gamma(2 * n) * (1 - ellip))


def fit_point_source_sersic(image, psf=None, position=None, band=None, size=64,
                            oversample=5, maxiter=200, threshold=None, errors=None):
    """Two-component decomposition: a point source plus a PSF-convolved Sérsic host.

    The model is ``ConvolvedSersic2D(psf) + ImagePSF(psf) + Const2D`` (a
    sky pedestal, as GALFIT fits one) with the host centred on the point
    source, fitted by least squares weighted by the
    uncertainty plane over a ``size`` x ``size`` box around the point
    source; pixels of other detected sources and masked pixels are left
    out.  The fit starts from the segmentation: the host's flux, size,
    ellipticity and orientation from its segment, half its flux in the
    point source.  A fit that fails or does not converge is flagged in the
    table, not raised, so a batch goes on.

    Parameters
    ----------
    image, psf, position, band
        As for `~galaxyml.gan.PSFGAN.remove_point_source` (see
        `~galaxyml.morphology.prepare_agn_images`).
    size : int
        Side of the fitted box in pixels.
    oversample : int
        Sub-pixels per pixel side of the Sérsic profile's core.
    maxiter : int
        Largest number of model evaluations.
    threshold : float, optional
        Detection threshold in ``ps_snr``; by default
        ``galaxyml.morphology.conf.detection_threshold``.
    errors : `~galaxyml.morphology.DecompositionErrors`, optional
        The calibrated errors; `fit_error_model` by default.

    Returns
    -------
    host : same type as ``image``
        The image minus the fitted point source (the image itself where no
        point source is detected).
    table : `~astropy.table.QTable`
        One row per image, the columns of
        `~galaxyml.morphology.decomposition_table`: ``ps_flux`` the fitted
        point-source flux with its error from the covariance and the
        calibration; ``host_flux`` in the Kron aperture of the host image
        (the same definition as for PSFGAN and the truth of
        `~galaxyml.degrade.add_point_source`).  Also ``host_sersic_flux``
        (the Sérsic model's total flux, error from the covariance) and
        ``host_sersic_mag``,
        ``sersic_n``, ``sersic_r_eff`` (pixels), ``sersic_ellip``,
        ``sersic_theta`` (radians), ``sky`` (the pedestal, nanomaggies per
        pixel), ``reduced_chi2`` and ``n_evaluations``.
    """
    prepared, single = prepare_agn_images(image, psf, position, band)
    fits = [_fit_one(item, size, oversample, maxiter) for item in prepared]
    rows = [row for row, _ in fits]
    for item, row in zip(prepared, rows):
        item.flags |= row["flags"]
    point = PointSourceFit(*(np.array([row[name] for row in rows], float)
                             for name in ("ps_flux", "ps_flux_err", "x", "y")),
                           np.array([_believable(row) for row in rows], bool))
    extra = [{name: value for name, value in row.items() if name not in _POINT_COLUMNS}
             for row in rows]
    method = "point source + Sersic fit"
    table, host_images = decide_and_measure(
        prepared, [item.data - model for item, (_, model) in zip(prepared, fits)],
        fit_error_model() if errors is None else errors, method, threshold, point=point,
        extra=extra)
    hosts = [item.wrap(host, method=method) for item, host in zip(prepared, host_images)]
    for name, unit in (("host_sersic_flux", u.nanomaggy), ("host_sersic_flux_err", u.nanomaggy),
                       ("sersic_r_eff", u.pix), ("sersic_theta", u.rad), ("sky", u.nanomaggy)):
        table[name] = u.Quantity(np.asarray(table[name], float), unit)
    table.add_column(nanomaggies_to_mag(table["host_sersic_flux"]), name="host_sersic_mag",
                     index=table.colnames.index("host_sersic_flux_err") + 1)
    if single:
        return hosts[0], table
    return (np.stack(hosts) if isinstance(image, np.ndarray) else hosts), table


_POINT_COLUMNS = ("ps_flux", "ps_flux_err", "x", "y", "flags")
# A point source fainter than this, or with a smaller magnitude error, is a failed fit.
_FAINTEST_MAG = 30.0
_SMALLEST_MAG_ERR = 1e-4


def _believable(row):
    """Whether a fit's point source is a measurement: finite, brighter than magnitude 30,
    with an error above 1e-4 mag."""
    flux, flux_err = row["ps_flux"], row["ps_flux_err"]
    if not (np.isfinite(flux) and np.isfinite(flux_err)) or row["flags"] & FLAG_FAILED:
        return False
    return bool(flux > 0 and nanomaggies_to_mag(flux).value < _FAINTEST_MAG
                and _MAG_PER_RELATIVE_FLUX * flux_err / flux > _SMALLEST_MAG_ERR)


@functools.lru_cache(maxsize=1)
def _shipped_fit_errors():
    path = resources.files(__package__) / "data" / "fit-errors.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fit_error_model():
    """The calibrated errors of `fit_point_source_sersic`, shipped with galaxyml.

    Fitted by ``scripts/evaluate_psfgan.py --calibrate-fit`` on pairs of the
    training side of the real field 2583-2-136 (the command is in the
    file's ``meta``).  Photometric errors alone where the file is missing.

    Returns
    -------
    errors : `~galaxyml.morphology.DecompositionErrors`
    """
    return DecompositionErrors.from_dict(_shipped_fit_errors())


def _fit_one(item, size, oversample, maxiter):
    """(table row, point-source image) of one `AGNImage`."""
    source_box = SourceBox(item.shape, item.x, item.y, size, pad=False)
    box = source_box.slices
    data, error = item.data[box], item.error[box]
    y0, x0 = box[0].start, box[1].start
    yy, xx = np.mgrid[box]
    source, excluded = _segments(item, box)
    weights = np.where(excluded, 0.0, 1.0 / error)
    kernel = item.psf.render()
    model = _initial_model(data, source, item.x, item.y, x0, y0, kernel, oversample)
    fitter = TRFLSQFitter(calc_uncertainties=True)
    flags = item.flags | source_box.flags
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstropyUserWarning)
            fitted = fitter(model, xx, yy, data, weights=weights, maxiter=maxiter)
    except (ValueError, np.linalg.LinAlgError, RuntimeError):
        return _failed_row(item, flags), np.zeros(item.shape)
    if caught or fitted.cov_matrix is None:
        flags |= FLAG_PS_FIT
    host_model, point_model, sky = fitted[0], fitted[1], fitted[2]
    point_source = np.zeros(item.shape)
    point_source[box] = point_model(xx, yy)
    covariance = _covariance(fitted)
    ps_flux_err = np.sqrt(covariance.get(("flux_1", "flux_1"), np.nan))
    sersic_flux, sersic_flux_err = _sersic_flux_and_error(host_model, covariance)
    residual = (data - fitted(xx, yy)) * weights
    dof = max(int((weights > 0).sum()) - len(_covariance_names(fitted)), 1)
    row = {"ps_flux": float(point_model.flux.value), "ps_flux_err": float(ps_flux_err),
           "x": float(point_model.x_0.value), "y": float(point_model.y_0.value),
           "flags": flags,
           "host_sersic_flux": sersic_flux, "host_sersic_flux_err": sersic_flux_err,
           "sersic_n": float(host_model.n.value), "sersic_r_eff": float(host_model.r_eff.value),
           "sersic_ellip": float(host_model.ellip.value),
           "sersic_theta": float(host_model.theta.value), "sky": float(sky.amplitude.value),
           "reduced_chi2": float((residual ** 2).sum() / dof),
           "n_evaluations": int(fitter.fit_info.nfev)}
    return row, point_source


def _segments(item, box):
    """The sources of the box: the one at the point source (its catalogue row, or None) and
    the pixels left out of the fit (masked, or in another source's segment)."""
    image = CCDData(item.data[box], unit=u.nanomaggy, mask=item.mask[box],
                    uncertainty=StdDevUncertainty(item.error[box]))
    catalog, segments = source_catalog(image, nsigma=3.0, npixels=10, segment_map=True)
    excluded = item.mask[box].copy()
    if len(catalog) == 0:
        return None, excluded
    x, y = item.x - box[1].start, item.y - box[0].start
    own = catalog[int(np.argmin(np.hypot(catalog["x"] - x, catalog["y"] - y)))]
    excluded |= (segments > 0) & (segments != own["id"])
    return own, excluded


def _initial_model(data, source, x, y, x0, y0, kernel, oversample):
    """The compound model, initialised from the segment of the source (a catalogue row)."""
    local_x, local_y = x - x0, y - y0
    if source is not None:
        flux = float(u.Quantity(source["flux"]).value)
        radius = max(1.18 * float(u.Quantity(source["fwhm"]).value) / 2.355, 1.0)
        ellip = min(1 - 1 / float(source["elongation"]), 0.5)
    else:
        flux, radius, ellip = max(float(data.sum()), 1e-3), 2.0, 0.0
    peak = float(data[int(round(local_y)), int(round(local_x))])
    ps_flux = max(0.5 * min(flux, peak / kernel.max()), 1e-3)
    n = 1.5
    host_flux = max(flux - ps_flux, 1e-3)
    amplitude = host_flux / sersic_total_flux(1.0, radius, n, ellip)
    host = ConvolvedSersic2D(kernel, oversample, amplitude=amplitude, r_eff=radius, n=n,
                             x_0=x, y_0=y, ellip=ellip, theta=0.0)
    point = ImagePSF(kernel, flux=ps_flux, x_0=x, y_0=y)
    host.amplitude.bounds = (0.0, None)
    host.r_eff.bounds = (0.3, max(data.shape))
    host.n.bounds = _N_RANGE
    host.ellip.bounds = (0.0, _MAX_ELLIP)
    point.flux.bounds = (0.0, None)
    point.x_0.bounds = (x - _MAX_SHIFT, x + _MAX_SHIFT)
    point.y_0.bounds = (y - _MAX_SHIFT, y + _MAX_SHIFT)
    model = host + point + Const2D(0.0, name="sky")
    # The host is centred on the point source (the AGN sits at the galaxy's centre).
    model.x_0_0.tied = lambda m: m.x_0_1
    model.y_0_0.tied = lambda m: m.y_0_1
    return model


def _covariance_names(model):
    """Names of the fitted (free, untied) parameters, in the covariance's order."""
    return [name for name in model.param_names
            if not model.fixed[name] and not model.tied[name]]


def _covariance(model):
    """{(name, name): covariance} of the fitted parameters (empty without a covariance)."""
    if model.cov_matrix is None:
        return {}
    names = _covariance_names(model)
    matrix = np.asarray(model.cov_matrix.cov_matrix)
    return {(a, b): matrix[i, j] for i, a in enumerate(names) for j, b in enumerate(names)}


def _sersic_flux_and_error(host, covariance):
    """Total flux of the fitted Sérsic and its error, propagated through the covariance."""
    names = ["amplitude_0", "r_eff_0", "n_0", "ellip_0"]
    values = np.array([host.amplitude.value, host.r_eff.value, host.n.value, host.ellip.value])
    flux = float(sersic_total_flux(*values))
    if not covariance:
        return flux, np.nan
    gradient = np.zeros(4)
    for k in range(4):
        step = 1e-6 * max(abs(values[k]), 1e-3)
        shifted = values.copy()
        shifted[k] += step
        gradient[k] = (sersic_total_flux(*shifted) - flux) / step
    matrix = np.array([[covariance.get((a, b), 0.0) for b in names] for a in names])
    return flux, float(np.sqrt(max(gradient @ matrix @ gradient, 0.0)))


def _failed_row(item, flags):
    nan = np.nan
    return {"ps_flux": nan, "ps_flux_err": nan, "x": item.x, "y": item.y,
            "flags": flags | FLAG_FAILED, "host_sersic_flux": nan, "host_sersic_flux_err": nan,
            "sersic_n": nan, "sersic_r_eff": nan, "sersic_ellip": nan, "sersic_theta": nan,
            "sky": nan, "reduced_chi2": nan, "n_evaluations": 0}
