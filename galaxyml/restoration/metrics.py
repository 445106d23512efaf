# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""How close a restored galaxy image is to the original, as the paper and in flux units."""

import numpy as np
from photutils.segmentation import detect_sources
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..degrade.core import background_std

__all__ = ["psnr", "ssim", "central_segment", "flux_error", "flux_noise", "residual_rms"]


def psnr(target, estimate, data_range=1.0):
    """Peak signal-to-noise ratio in dB, on stretched images (values in [0, 1])."""
    with np.errstate(divide="ignore"):  # identical images: infinite PSNR
        return float(peak_signal_noise_ratio(np.asarray(target, float),
                                             np.asarray(estimate, float), data_range=data_range))


def ssim(target, estimate, data_range=1.0):
    """Structural similarity of stretched images, shape (ny, nx) or (n_bands, ny, nx)."""
    target, estimate = np.asarray(target, float), np.asarray(estimate, float)
    channel_axis = 0 if target.ndim == 3 else None
    return float(structural_similarity(target, estimate, data_range=data_range,
                                       channel_axis=channel_axis))


def central_segment(image, nsigma=2.0):
    """Mask of the segment of the source at the centre of a stamp (2-D, nanomaggies).

    Returns None when the centre pixel belongs to no detected source.
    """
    data = np.asarray(image, float)
    segments = detect_sources(data, nsigma * background_std(data), n_pixels=10)
    if segments is None:
        return None
    ny, nx = data.shape
    label = segments.data[ny // 2, nx // 2]
    return None if label == 0 else segments.data == label


def flux_error(target, estimate, segment):
    """Relative error of the total flux within the galaxy's segment (linear units)."""
    total = float(np.sum(np.asarray(target)[segment]))
    return float(np.sum(np.asarray(estimate)[segment]) - total) / total


def flux_noise(target, segment, noise):
    """Relative 1-sigma noise of the flux summed in a segment of an image with white noise.

    ``noise * sqrt(n_pixels) / flux``: how well the data themselves measure
    the galaxy's flux in ``segment``, the floor below which no restoration
    can be expected to recover it on average.

    Parameters
    ----------
    target : 2-D array
        The original image (nanomaggies), whose flux in ``segment`` is the
        reference.
    segment : 2-D bool array
    noise : float
        Standard deviation of the noisy image's pixels (nanomaggies).
    """
    total = float(np.sum(np.asarray(target)[segment]))
    return float(noise * np.sqrt(np.count_nonzero(segment)) / abs(total))


def residual_rms(target, estimate, noise):
    """RMS of estimate - target in units of the original image's noise."""
    residual = np.asarray(estimate, float) - np.asarray(target, float)
    return float(np.sqrt(np.mean(residual ** 2)) / noise)
