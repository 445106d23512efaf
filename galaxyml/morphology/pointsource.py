# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
PSF photometry of one point source per image, for a whole batch at once.

`psf_photometry` fits ``flux * PSF(x - x0, y - y0)`` to a box around a
known position in every image of a batch by weighted least squares
(Gauss-Newton on flux and position, the PSF shifted in Fourier space), with
NumPy arrays over the batch instead of one photutils fit per image: the
point-source photometry of a decomposition costs well under a millisecond a
galaxy.  ``flux_err`` is the flux's standard deviation from the fit's
covariance, as photutils' `~photutils.psf.PSFPhotometry` reports it.
"""

import numpy as np

__all__ = ["PointSourceFit", "psf_photometry", "place_psf", "fit_box_size"]

_ITERATIONS = 5


class PointSourceFit:
    """The result of `psf_photometry`: arrays with one value per image.

    Attributes
    ----------
    flux, flux_err : `~numpy.ndarray`
        Flux and its 1-sigma error, in the images' unit.
    x, y : `~numpy.ndarray`
        The fitted position (0-based pixels).
    ok : `~numpy.ndarray` of bool
        False where the fit had no usable pixel or its covariance is singular.
    """

    def __init__(self, flux, flux_err, x, y, ok):
        self.flux, self.flux_err, self.x, self.y, self.ok = flux, flux_err, x, y, ok

    def __len__(self):
        return len(self.flux)


def fit_box_size(kernel):
    """Odd side of the fitting box: about four FWHM (from the area above half the peak), at
    least 7 pixels."""
    fwhm = 2 * np.sqrt((kernel >= kernel.max() / 2).sum() / np.pi)
    return max(2 * int(np.ceil(2 * fwhm)) + 1, 7)


def psf_photometry(images, errors, kernels, positions, masks=None, max_shift=2.0,
                   fit_position=True):
    """Flux (and position) of one point source in each image of a batch.

    Parameters
    ----------
    images, errors : array (n, ny, nx) or sequences of 2-D arrays
        The point source (with anything else the images hold) and the
        1-sigma errors of its pixels; the images may differ in shape.
    kernels : sequence of 2-D arrays
        Each image's PSF, odd sides, unit sum, centred on its central pixel.
    positions : array (n, 2)
        Initial (x, y) of each source.
    masks : array (n, ny, nx) of bool or sequence of 2-D arrays, optional
        Pixels left out of the fit.
    max_shift : float
        The fit moves each position by at most this many pixels.
    fit_position : bool
        False: the flux only, at ``positions`` (a linear fit).

    Returns
    -------
    fit : `PointSourceFit`
    """
    images = [np.asarray(image, float) for image in images]
    n = len(images)
    positions = np.asarray(positions, float).reshape(n, 2)
    weights = []
    for k, error in enumerate(errors):
        with np.errstate(divide="ignore"):
            weight = 1.0 / np.asarray(error, float) ** 2
        weight = np.where(np.isfinite(weight), weight, 0.0)
        weights.append(weight if masks is None else np.where(masks[k], 0.0, weight))
    box = max(fit_box_size(np.asarray(k)) for k in kernels)
    centre = np.round(positions).astype(int)
    data, weight = _boxes(images, weights, centre, box)
    spectra = _kernel_spectra(kernels, box)
    offset = positions - centre               # (dx, dy) of the PSF from the box centre
    start = offset.copy()
    for _ in range(_ITERATIONS if fit_position else 0):
        flux = _linear_flux(data, weight, _shifted(spectra, offset, box))[0]
        offset = _gauss_newton_step(data, weight, spectra, offset, flux, box)
        offset = start + np.clip(offset - start, -max_shift, max_shift)
    model = _shifted(spectra, offset, box)
    flux, flux_err = _linear_flux(data, weight, model)
    if fit_position:
        flux_err = _flux_error_with_position(weight, spectra, offset, flux, box, flux_err)
    ok = np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0)
    x, y = (centre + offset).T
    return PointSourceFit(flux, flux_err, x, y, ok)


def place_psf(shape, kernels, positions, fluxes):
    """Images of ``shape`` (ny, nx), each holding ``flux * PSF`` centred at its position.

    Parameters
    ----------
    shape : tuple of int
    kernels : sequence of 2-D arrays
        Odd sides, unit sum.
    positions : array (n, 2)
        (x, y) of each source.
    fluxes : array (n,)

    Returns
    -------
    images : array (n, ny, nx)
    """
    positions = np.asarray(positions, float).reshape(-1, 2)
    n, (ny, nx) = len(positions), shape
    side = max(np.shape(k)[0] for k in kernels)
    side += 1 - side % 2
    spectra = _kernel_spectra(kernels, side)
    centre = np.round(positions).astype(int)
    stamps = _shifted(spectra, positions - centre, side) * np.asarray(fluxes, float)[:, None, None]
    half = side // 2
    padded = np.zeros((n, ny + 2 * half, nx + 2 * half))
    for k, (cx, cy) in enumerate(centre):
        if -half <= cx < nx + half and -half <= cy < ny + half:
            padded[k, cy:cy + side, cx:cx + side] += stamps[k]
    return padded[:, half:half + ny, half:half + nx]


def _boxes(images, weights, centre, box):
    """(n, box, box) cuts of the images and weights around ``centre``; zero weight off the
    image.  The images may differ in shape."""
    half = box // 2
    data = np.zeros((len(images), box, box))
    weight = np.zeros((len(images), box, box))
    for k, (image, image_weight, (cx, cy)) in enumerate(zip(images, weights, centre)):
        ny, nx = image.shape
        ys = slice(max(cy - half, 0), max(min(cy + half + 1, ny), 0))
        xs = slice(max(cx - half, 0), max(min(cx + half + 1, nx), 0))
        if ys.stop > ys.start and xs.stop > xs.start:
            to = (slice(ys.start - cy + half, ys.stop - cy + half),
                  slice(xs.start - cx + half, xs.stop - cx + half))
            data[k][to] = image[ys, xs]
            weight[k][to] = image_weight[ys, xs]
    return data, weight


def _kernel_spectra(kernels, box):
    """The kernels' 2-D FFTs on a common grid a margin wider than the box, centred."""
    side = box + 2 * 4  # room for shifts up to a few pixels without wrapping into the box
    stack = np.zeros((len(kernels), side, side))
    for k, kernel in enumerate(kernels):
        kernel = np.asarray(kernel, float)
        ky, kx = kernel.shape
        cut_y, cut_x = max((ky - side) // 2, 0), max((kx - side) // 2, 0)
        kernel = kernel[cut_y:ky - cut_y, cut_x:kx - cut_x]
        ky, kx = kernel.shape
        y0, x0 = (side - ky) // 2, (side - kx) // 2
        stack[k, y0:y0 + ky, x0:x0 + kx] = kernel
    return np.fft.fft2(np.fft.ifftshift(stack, axes=(1, 2)))


def _phase(offset, side):
    frequency = np.fft.fftfreq(side)
    return (np.exp(-2j * np.pi * frequency[None, None, :] * offset[:, 0, None, None])
            * np.exp(-2j * np.pi * frequency[None, :, None] * offset[:, 1, None, None]))


def _crop(images, box):
    """The central ``box`` x ``box`` of centred (fftshifted) images."""
    shifted = np.fft.fftshift(images, axes=(1, 2))
    start = (shifted.shape[1] - box) // 2
    return shifted[:, start:start + box, start:start + box]


def _shifted(spectra, offset, box, derivative=None):
    """The PSFs moved by ``offset`` (dx, dy), cut to the box; or their derivative along
    axis ``derivative`` (0: x, 1: y) with respect to the offset."""
    side = spectra.shape[1]
    spectrum = spectra * _phase(offset, side)
    if derivative is not None:
        frequency = np.fft.fftfreq(side)
        factor = (frequency[None, None, :] if derivative == 0 else frequency[None, :, None])
        spectrum = spectrum * (-2j * np.pi * factor)
    return _crop(np.fft.ifft2(spectrum).real, box)


def _linear_flux(data, weight, model):
    """Weighted least-squares flux of ``model`` in ``data`` and its error, per image."""
    with np.errstate(divide="ignore", invalid="ignore"):
        information = np.sum(weight * model * model, axis=(1, 2))
        flux = np.sum(weight * model * data, axis=(1, 2)) / information
        return flux, 1.0 / np.sqrt(information)


def _jacobian(spectra, offset, flux, box):
    flux = np.nan_to_num(flux)  # an image without information gets no step
    model = _shifted(spectra, offset, box)
    return np.stack([model, flux[:, None, None] * _shifted(spectra, offset, box, 0),
                     flux[:, None, None] * _shifted(spectra, offset, box, 1)], axis=-1)


def _gauss_newton_step(data, weight, spectra, offset, flux, box):
    """The offset after one Gauss-Newton step on (flux, dx, dy)."""
    jacobian = _jacobian(spectra, offset, flux, box)
    residual = data - np.nan_to_num(flux)[:, None, None] * jacobian[..., 0]
    normal = np.einsum("nyxa,nyx,nyxb->nab", jacobian, weight, jacobian)
    gradient = np.einsum("nyxa,nyx,nyx->na", jacobian, weight, residual)
    step = np.zeros_like(gradient)
    solvable = _solvable(normal)
    step[solvable] = np.linalg.solve(normal[solvable], gradient[solvable][..., None])[..., 0]
    step = np.where(np.isfinite(step), step, 0.0)
    return offset + np.clip(step[:, 1:], -1.0, 1.0)


def _flux_error_with_position(weight, spectra, offset, flux, box, linear_error):
    """The flux's error from the covariance of (flux, dx, dy), as a full fit reports it."""
    jacobian = _jacobian(spectra, offset, flux, box)
    normal = np.einsum("nyxa,nyx,nyxb->nab", jacobian, weight, jacobian)
    error = linear_error.copy()
    solvable = _solvable(normal)
    covariance = np.linalg.inv(normal[solvable])
    error[solvable] = np.sqrt(np.maximum(covariance[:, 0, 0], 0.0))
    return error


def _solvable(normal):
    """Which of the (n, 3, 3) normal matrices can be inverted."""
    with np.errstate(invalid="ignore", over="ignore"):
        determinant = np.linalg.det(normal)
    return np.isfinite(determinant) & (np.abs(determinant) > 0)
