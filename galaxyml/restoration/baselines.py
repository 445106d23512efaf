# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Classical deconvolution with a known PSF: the baselines GalaxyGAN is compared with."""

import numpy as np
from scipy import fft
from scipy.signal import fftconvolve
from skimage.restoration import richardson_lucy as skimage_richardson_lucy
from skimage.restoration import unsupervised_wiener

from ..degrade.core import background_std
from ..exceptions import InvalidParameterError
from ..psf.models import normalized_kernel
from ..utils._kernels import check_odd

__all__ = ["richardson_lucy", "wiener", "blind_deconvolution", "richardson_lucy_discrepancy",
           "richardson_lucy_at_noise", "DECONVOLUTION_METHODS"]


def _offset(image):
    """A constant that makes the image positive: RL needs positive data, a sky-subtracted
    image is not, and a normalised PSF leaves a constant unchanged."""
    return max(0.0, -float(np.nanmin(image))) + 1e-3


def _reflect_padded(deconvolve):
    """Run ``deconvolve(image, psf, iterations)`` on the image mirrored beyond its edges.

    The deconvolutions convolve with zero padding; without mirrored borders
    they darken a kernel's width along the edges, an artefact no fair
    comparison should keep.
    """
    def padded(image, psf, iterations=10):
        pad = np.asarray(psf).shape[0]
        image = np.asarray(image, float)
        mirrored = np.pad(image, pad, mode="reflect")
        return deconvolve(mirrored, psf, iterations)[pad:-pad, pad:-pad]

    padded.__name__ = deconvolve.__name__
    padded.__doc__ = deconvolve.__doc__
    return padded


@_reflect_padded
def richardson_lucy(image, psf, iterations=10):
    """Richardson-Lucy deconvolution (scikit-image) of a sky-subtracted image.

    Parameters
    ----------
    image : 2-D array
        The image (any sign; a constant offset is added and removed).
    psf : 2-D array
        The known PSF, odd-sized; normalised here.
    iterations : int
        Iterations; more sharpen more and amplify noise.
    """
    psf = normalized_kernel(psf)
    offset = _offset(image)
    restored = skimage_richardson_lucy(np.asarray(image, float) + offset, psf,
                                       num_iter=int(iterations), clip=False)
    return restored - offset


@_reflect_padded
def wiener(image, psf, iterations=None):
    """Unsupervised Wiener-Hunt deconvolution (scikit-image), which estimates its own
    regularisation; ``iterations`` is accepted for a uniform interface and ignored."""
    psf = normalized_kernel(psf)
    scale = float(np.nanstd(image)) or 1.0
    # Scale to unit variance: the prior's hyper-parameters assume data of order one.
    restored, _ = unsupervised_wiener(np.asarray(image, float) / scale, psf, clip=False,
                                      rng=np.random.default_rng(0))
    return restored * scale


@_reflect_padded
def blind_deconvolution(image, psf, iterations=10):
    """Blind Richardson-Lucy deconvolution starting from a PSF guess (Fish et al. 1995).

    Alternates one Richardson-Lucy update of the image with one of the PSF,
    which stays normalised and of its initial size.  The paper's classical
    baseline started from the true Gaussian PSF.

    Parameters
    ----------
    image : 2-D array
    psf : 2-D array
        Initial PSF, odd-sized.
    iterations : int
    """
    psf = normalized_kernel(psf)
    check_odd(psf.shape)
    offset = _offset(image)
    data = np.asarray(image, float) + offset
    estimate = np.full_like(data, data.mean())
    half = np.array(psf.shape) // 2
    centre = np.array(data.shape) // 2
    for _ in range(int(iterations)):
        blurred = fftconvolve(estimate, psf, mode="same")
        ratio = data / np.maximum(blurred, 1e-12)
        estimate = estimate * fftconvolve(ratio, psf[::-1, ::-1], mode="same")
        blurred = fftconvolve(estimate, psf, mode="same")
        ratio = data / np.maximum(blurred, 1e-12)
        correlation = fftconvolve(ratio, estimate[::-1, ::-1], mode="same") / estimate.sum()
        window = correlation[centre[0] - half[0]:centre[0] + half[0] + 1,
                             centre[1] - half[1]:centre[1] + half[1] + 1]
        psf = np.clip(psf * window, 0, None)
        psf /= psf.sum()
    return estimate - offset


def richardson_lucy_discrepancy(images, psf, noise, max_iterations=40):
    """Richardson-Lucy deconvolution stopped by the discrepancy principle (Morozov 1966).

    Iterating sharpens and, past some point, amplifies noise; the point
    depends on the noise.  Each band is iterated until the mean square of
    its residual ``image - psf * estimate`` falls to the noise variance,
    the most that data with this noise can tell apart, so no iteration
    count has to be tuned per noise level.  All bands are updated together
    with one FFT per step.

    Parameters
    ----------
    images : array (n_bands, ny, nx) or (ny, nx)
        Sky-subtracted images (any sign; an offset of a few sigma is added
        and removed, as Richardson-Lucy needs positive data).
    psf : 2-D array
        The known PSF (the blur to undo), odd-sized; normalised here.
    noise : float or array (n_bands,)
        Standard deviation of each band's noise, in the images' unit.
    max_iterations : int
        Bands whose residual never reaches the noise stop here.

    Returns
    -------
    estimate : array, shape of ``images``
    iterations : array of int (n_bands,)
        The iteration each band stopped at.
    """
    images = np.asarray(images, float)
    single = images.ndim == 2
    images = images[None] if single else images
    noise = np.broadcast_to(np.asarray(noise, float), (len(images),))
    if not np.all(noise > 0):
        raise InvalidParameterError(f"noise must be positive, not {noise}")
    psf = normalized_kernel(psf)
    pad = max(psf.shape)
    # Mirrored borders: the FFT's convolution wraps around, the sky does not.
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    shape = padded.shape[1:]
    inside = (slice(None), slice(pad, -pad), slice(pad, -pad))
    transfer = fft.rfft2(_centred_on_origin(psf, shape))

    def blur(array, function=transfer):
        return fft.irfft2(fft.rfft2(array) * function, s=shape)

    offset = (np.maximum(0.0, -padded.min(axis=(1, 2))) + 3 * noise)[:, None, None]
    data = padded + offset
    estimate = np.broadcast_to(data.mean(axis=(1, 2), keepdims=True), data.shape).copy()
    result = estimate.copy()
    stopped = np.full(len(images), -1)  # -1: still iterating
    for iteration in range(1, int(max_iterations) + 1):
        blurred = blur(estimate)
        residual = np.mean((data - blurred)[inside] ** 2, axis=(1, 2))
        newly = (stopped < 0) & (residual <= noise ** 2)
        result[newly], stopped[newly] = estimate[newly], iteration - 1
        if np.all(stopped >= 0):
            break
        estimate = estimate * blur(data / np.maximum(blurred, 1e-12), np.conj(transfer))
    running = stopped < 0
    result[running], stopped[running] = estimate[running], int(max_iterations)
    restored = (result - offset)[inside]
    return (restored[0] if single else restored), stopped


def _centred_on_origin(kernel, shape):
    """``kernel`` in an array of ``shape`` with its centre at pixel (0, 0), for FFTs."""
    array = np.zeros(shape)
    ny, nx = kernel.shape
    array[:ny, :nx] = kernel
    return np.roll(array, (-(ny // 2), -(nx // 2)), axis=(0, 1))


def richardson_lucy_at_noise(images, psf):
    """`richardson_lucy_discrepancy` at each band's measured background noise.

    The deconvolution GalaxyGAN's refine mode starts from.

    Parameters
    ----------
    images : array (n_bands, ny, nx) or (ny, nx)
        Sky-subtracted images.
    psf : 2-D array
        The known PSF (the blur to undo).

    Returns
    -------
    estimate : array, shape of ``images``
    noise : array (n_bands,)
        The measured noise of each band (floored just above zero).
    """
    images = np.asarray(images, float)
    planes = images[None] if images.ndim == 2 else images
    noise = np.array([max(background_std(plane), np.finfo(float).tiny) for plane in planes])
    # Band by band (the bands stop independently): a third of the memory on a whole frame.
    estimate = np.empty_like(planes)
    for band, (plane, level) in enumerate(zip(planes, noise)):
        estimate[band] = richardson_lucy_discrepancy(plane, psf, level)[0]
    return estimate.reshape(images.shape), noise


def _richardson_lucy_at_noise(image, psf, iterations=None):
    """`richardson_lucy_at_noise` as a baseline (``iterations`` is unused: the
    discrepancy principle chooses them)."""
    return richardson_lucy_at_noise(image, psf)[0]


#: Name -> function(image, psf, iterations) of the classical baselines.  ``RL-discrepancy``
#: is the deconvolution that GalaxyGAN's refine mode starts from.
DECONVOLUTION_METHODS = {"Richardson-Lucy": richardson_lucy, "Wiener": wiener,
                         "blind": blind_deconvolution,
                         "RL-discrepancy": _richardson_lucy_at_noise}
