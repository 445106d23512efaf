# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""PSF models that render normalised, centred kernels on a pixel grid."""

import numpy as np
from astropy import units as u
from scipy.ndimage import map_coordinates, shift as shift_image
from scipy.special import erf

from ..exceptions import InvalidParameterError, InvalidPSFError
from ..io.sdss import SDSS_PIXEL_SCALE
from ..utils._kernels import check_odd
from ._fwhm import fit_fwhm_pixels

__all__ = ["PSFModel", "GaussianPSF", "MoffatPSF", "SampledPSF", "normalized_kernel",
           "GAUSSIAN_FWHM_TO_SIGMA"]

#: sigma = GAUSSIAN_FWHM_TO_SIGMA * FWHM for a Gaussian.
GAUSSIAN_FWHM_TO_SIGMA = 1 / (2 * np.sqrt(2 * np.log(2)))


def normalized_kernel(array, name="PSF"):
    """``array`` as float64 scaled to unit sum, after checking that it can be.

    Raises
    ------
    InvalidPSFError
        If ``array`` holds NaN or inf or its sum is not positive.
    EvenKernelSizeError
        If a side of ``array`` is even (a kernel needs a central pixel).
    """
    array = np.asarray(array, dtype=float)
    if array.ndim != 2:
        raise InvalidPSFError(f"the {name} must be a 2-D image, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidPSFError(f"the {name} holds {int((~np.isfinite(array)).sum())} NaN or "
                              "infinite pixels and cannot be normalised")
    check_odd(array.shape, name)
    total = array.sum()
    if not total > 0:
        raise InvalidPSFError(f"the {name} sums to {total:g}: a PSF must have a positive sum "
                              "to be normalised")
    return array / total


def _pixel_scale(pixel_scale):
    scale = u.Quantity(pixel_scale)
    if scale.unit.physical_type == "angle":
        scale = scale / u.pix
    return scale.to(u.arcsec / u.pix)


def _fwhm_in_pixels(fwhm, pixel_scale):
    """A FWHM given as an angle, in pixels (u.pix) or as a plain number of pixels."""
    fwhm = u.Quantity(fwhm)
    if fwhm.unit == u.dimensionless_unscaled:
        fwhm = fwhm.value * u.pix
    if fwhm.unit.physical_type == "angle":
        fwhm = (fwhm / pixel_scale).to(u.pix)
    value = fwhm.to_value(u.pix)
    if not (np.isfinite(value) and value > 0):
        raise InvalidPSFError(f"the FWHM must be positive and finite, not {fwhm}")
    return float(value)


class PSFModel:
    """Base class of PSF models: a PSF that renders on a pixel grid.

    Subclasses implement ``_render(size, offset)`` and ``default_size``.

    Parameters
    ----------
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel (``arcsec / pix`` or an angle); SDSS's by default.
    """

    def __init__(self, pixel_scale=SDSS_PIXEL_SCALE):
        self.pixel_scale = _pixel_scale(pixel_scale)

    @property
    def default_size(self):
        """Odd side, in pixels, that holds the PSF to a negligible fraction of its flux."""
        raise NotImplementedError

    def render(self, size=None, offset=(0.0, 0.0)):
        """The PSF on a ``size`` x ``size`` pixel grid, normalised to unit sum.

        Parameters
        ----------
        size : int, optional
            Odd side of the kernel in pixels; `default_size` when omitted.
        offset : tuple of float
            (dx, dy) shift of the PSF centre from the central pixel, in
            pixels, for sub-pixel placement of a point source.

        Returns
        -------
        kernel : `~numpy.ndarray`
            float64, sums to one.
        """
        size = self.default_size if size is None else size
        check_odd(size)
        return normalized_kernel(self._render(int(size), tuple(float(v) for v in offset)))

    def _render(self, size, offset):
        raise NotImplementedError

    def scaled(self, factor):
        """This PSF made ``factor`` times as wide (``factor`` < 1: narrower), with unit flux.

        Used to test how methods that are given one PSF fare on point
        sources made with a wider or narrower one, and to train on a range
        of PSF widths.  Analytic models scale their FWHM; others are
        resampled (`SampledPSF`).

        Parameters
        ----------
        factor : float
            Ratio of the new width to this PSF's, positive.

        Returns
        -------
        psf : `PSFModel`
        """
        factor = _check_scale_factor(factor)
        return SampledPSF(_resample_wider(self.render(), factor), self.pixel_scale,
                          meta={"scaled_by": factor})


def _check_scale_factor(factor):
    factor = float(factor)
    if not (np.isfinite(factor) and factor > 0):
        raise InvalidParameterError(f"a PSF scale factor must be positive and finite, not "
                                    f"{factor}")
    return factor


def _resample_wider(kernel, factor, subsamples=5):
    """``kernel`` made ``factor`` times as wide about its central pixel.

    The kernel is a pixelated profile: the optics' PSF p convolved with
    the pixel.  Its cubic spline sampled at r / ``factor`` is p stretched
    but convolved with a pixel ``factor`` times as wide; for ``factor``
    < 1 the missing part of the pixel (a box of width sqrt(1 - factor^2)
    in second moments) is restored by averaging sub-pixel samples, so the
    result is p(r / factor) / factor^2 convolved with one pixel (to within
    a few per cent of the width for ``factor`` > 1).
    """
    size = kernel.shape[0]
    out_size = max(size, 2 * int(np.ceil(size * factor / 2)) + 1)
    box = np.sqrt(max(1.0 - factor ** 2, 0.0))
    shifts = ((np.arange(subsamples) + 0.5) / subsamples - 0.5) * box if box else np.zeros(1)
    centres = np.arange(out_size) - out_size // 2
    # Sample positions (y, x) for every sub-pixel shift, all in one spline evaluation.
    along = (centres[None, :] + shifts[:, None]) / factor + size // 2
    yy = np.broadcast_to(along[:, None, :, None], (len(shifts),) * 2 + (out_size,) * 2)
    xx = np.broadcast_to(along[None, :, None, :], (len(shifts),) * 2 + (out_size,) * 2)
    samples = map_coordinates(kernel, [yy, xx], order=3, mode="constant", cval=0.0)
    return np.clip(samples.sum(axis=(0, 1)), 0.0, None)


class GaussianPSF(PSFModel):
    """A circular Gaussian PSF, integrated over each pixel.

    Parameters
    ----------
    fwhm : `~astropy.units.Quantity` or float
        Full width at half maximum: an angle, a number of ``u.pix``, or a
        plain number of pixels.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel; SDSS's 0.396 arcsec by default.

    Examples
    --------
    >>> from astropy import units as u
    >>> from galaxyml.psf import GaussianPSF
    >>> psf = GaussianPSF(1.4 * u.arcsec)
    >>> kernel = psf.render(11)
    >>> kernel.shape, round(float(kernel.sum()), 12)
    ((11, 11), 1.0)
    """

    def __init__(self, fwhm, pixel_scale=SDSS_PIXEL_SCALE):
        super().__init__(pixel_scale)
        self.fwhm_pixels = _fwhm_in_pixels(fwhm, self.pixel_scale)

    @property
    def fwhm(self):
        """FWHM as an angle."""
        return (self.fwhm_pixels * u.pix * self.pixel_scale).to(u.arcsec)

    @property
    def sigma_pixels(self):
        """Standard deviation in pixels."""
        return self.fwhm_pixels * GAUSSIAN_FWHM_TO_SIGMA

    @property
    def default_size(self):
        return 2 * int(np.ceil(2 * self.fwhm_pixels)) + 1

    def __repr__(self):
        return f"<GaussianPSF fwhm={self.fwhm:.3f} ({self.fwhm_pixels:.3f} pix)>"

    def scaled(self, factor):
        return GaussianPSF(self.fwhm_pixels * _check_scale_factor(factor) * u.pix,
                           self.pixel_scale)

    def _render(self, size, offset):
        # Exact integral of the Gaussian over each pixel: point sources keep their flux
        # and position at any sub-pixel offset, even when the PSF is barely sampled.
        edges = np.arange(size + 1) - size / 2
        scale = np.sqrt(2) * self.sigma_pixels
        profile_x = np.diff(erf((edges - offset[0]) / scale))
        profile_y = np.diff(erf((edges - offset[1]) / scale))
        return np.outer(profile_y, profile_x)


class MoffatPSF(PSFModel):
    """A circular Moffat PSF, I(r) ~ (1 + (r / alpha)^2)^(-beta).

    Parameters
    ----------
    fwhm : `~astropy.units.Quantity` or float
        Full width at half maximum (angle, ``u.pix`` or plain pixels).
    beta : float
        Power-law index of the wings; 4.765 is the value Trujillo et al.
        (2001) found to describe atmospheric turbulence.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel.
    oversample : int
        Sub-pixels per pixel side over which the profile is averaged.
    """

    def __init__(self, fwhm, beta=4.765, pixel_scale=SDSS_PIXEL_SCALE, oversample=5):
        super().__init__(pixel_scale)
        if not beta > 1:
            raise InvalidPSFError(f"a Moffat profile needs beta > 1 to have a finite flux, "
                                  f"not {beta}")
        self.fwhm_pixels = _fwhm_in_pixels(fwhm, self.pixel_scale)
        self.beta = float(beta)
        self.oversample = int(oversample)

    @property
    def fwhm(self):
        """FWHM as an angle."""
        return (self.fwhm_pixels * u.pix * self.pixel_scale).to(u.arcsec)

    @property
    def alpha_pixels(self):
        """Core radius alpha in pixels."""
        return self.fwhm_pixels / (2 * np.sqrt(2 ** (1 / self.beta) - 1))

    @property
    def default_size(self):
        # The wings fall slowly: hold the radius enclosing about 99.5% of the flux.
        radius = self.alpha_pixels * np.sqrt(0.005 ** (1 / (1 - self.beta)) - 1)
        return 2 * int(np.ceil(max(radius, 2 * self.fwhm_pixels))) + 1

    def __repr__(self):
        return f"<MoffatPSF fwhm={self.fwhm:.3f} beta={self.beta:g}>"

    def scaled(self, factor):
        return MoffatPSF(self.fwhm_pixels * _check_scale_factor(factor) * u.pix, self.beta,
                         self.pixel_scale, self.oversample)

    def _render(self, size, offset):
        n = self.oversample
        sub = (np.arange(size * n) + 0.5) / n - size / 2
        r2 = ((sub[None, :] - offset[0]) ** 2 + (sub[:, None] - offset[1]) ** 2)
        profile = (1 + r2 / self.alpha_pixels ** 2) ** (-self.beta)
        return profile.reshape(size, n, size, n).mean(axis=(1, 3))


class SampledPSF(PSFModel):
    """A PSF given as an image at the pixel scale of the data.

    Made by `~galaxyml.psf.sdss_psf` and `~galaxyml.psf.empirical_psf`, or
    from any PSF image.

    Parameters
    ----------
    array : 2-D array
        The PSF image, centred on its central pixel; odd sides.  It is
        normalised to unit sum.
    pixel_scale : `~astropy.units.Quantity`
        Angle per pixel.
    meta : dict, optional
        Where the PSF comes from.
    """

    def __init__(self, array, pixel_scale=SDSS_PIXEL_SCALE, meta=None):
        super().__init__(pixel_scale)
        self.array = normalized_kernel(array)
        self.meta = {} if meta is None else dict(meta)

    @property
    def default_size(self):
        return self.array.shape[0]

    @property
    def fwhm(self):
        """FWHM of a circular Gaussian fit, as an angle."""
        return (fit_fwhm_pixels(self.render())[0] * u.pix * self.pixel_scale).to(u.arcsec)

    def __repr__(self):
        return f"<SampledPSF shape={self.array.shape} pixel_scale={self.pixel_scale:.3f}>"

    def scaled(self, factor):
        factor = _check_scale_factor(factor)
        return SampledPSF(_resample_wider(self.array, factor), self.pixel_scale,
                          meta=dict(self.meta, scaled_by=factor * self.meta.get("scaled_by", 1)))

    def _render(self, size, offset):
        image = _centre_crop_or_pad(self.array, size)
        if offset != (0.0, 0.0):
            # Cubic-spline shift: smooth enough for well-sampled PSFs (FWHM > 2 pix).
            image = shift_image(image, (offset[1], offset[0]), order=3, mode="constant")
        return image


def _centre_crop_or_pad(array, size):
    ny, nx = array.shape
    out = np.zeros((size, size))
    half = size // 2
    y0, x0 = ny // 2, nx // 2
    src_y = slice(max(y0 - half, 0), min(y0 + half + 1, ny))
    src_x = slice(max(x0 - half, 0), min(x0 + half + 1, nx))
    dst_y = slice(src_y.start - (y0 - half), src_y.stop - (y0 - half))
    dst_x = slice(src_x.start - (x0 - half), src_x.stop - (x0 - half))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out
