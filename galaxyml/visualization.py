# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Figures of images and cutouts, with astropy.visualization stretches."""

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval, \
    make_lupton_rgb

from .exceptions import InvalidParameterError
from .io.writing import atomic_output

__all__ = ["image_norm", "plot_cutouts", "save_figure"]


def image_norm(data, percentile=99.5, asinh_a=0.1):
    """An asinh `~astropy.visualization.ImageNormalize` suited to galaxy images."""
    finite = np.asarray(data)[np.isfinite(data)]
    return ImageNormalize(finite if finite.size else np.zeros(1),
                          interval=PercentileInterval(percentile),
                          stretch=AsinhStretch(asinh_a), clip=True)


def _colour_composite(cutout):
    """An RGB image of the three reddest-to-bluest bands (e.g. i, r, g) of a cutout."""
    order = [cutout.bands.index(band) for band in ("i", "r", "g")
             if band in cutout.bands] if set("gri") <= set(cutout.bands) else [2, 1, 0]
    planes = [np.nan_to_num(cutout.data[index]) for index in order]
    scale = np.nanpercentile(planes[1], 99.5) or 1.0
    with np.errstate(invalid="ignore", divide="ignore"):  # empty sky pixels divide 0 by 0
        return make_lupton_rgb(*planes, stretch=scale / 2, Q=8)


def plot_cutouts(cutouts, titles=None, figure=None, max_rows=8):
    """Plot multi-band cutouts: one row each, one panel per band plus a colour image.

    Parameters
    ----------
    cutouts : sequence of `~galaxyml.io.MultiBandCutout`
        The cutouts (at most ``max_rows`` are shown).
    titles : sequence of str, optional
        A label per cutout.
    figure : `matplotlib.figure.Figure`, optional
        Figure to draw in; a new one by default.
    max_rows : int
        Largest number of cutouts drawn.

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    cutouts = list(cutouts)[:max_rows]
    if not cutouts:
        raise InvalidParameterError("no cutouts to plot")
    n_bands = len(cutouts[0].bands)
    colour = n_bands >= 3
    n_columns = n_bands + int(colour)
    if figure is None:
        figure = plt.figure(figsize=(2.2 * n_columns, 2.2 * len(cutouts)))
    axes = figure.subplots(len(cutouts), n_columns, squeeze=False)
    for row, cutout in enumerate(cutouts):
        for index, band in enumerate(cutout.bands):
            data = np.where(cutout.mask[index], np.nan, cutout.data[index])
            axes[row, index].imshow(data, origin="lower", cmap="gray", norm=image_norm(data))
            if row == 0:
                axes[row, index].set_title(f"{band} [{cutout.unit}]")
        if colour:
            axes[row, -1].imshow(_colour_composite(cutout), origin="lower")
            if row == 0:
                axes[row, -1].set_title("colour")
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row])
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return figure


def save_figure(figure, path, overwrite=False, dpi=100):
    """Save a figure atomically (temporary file, then rename)."""
    with atomic_output(path, overwrite=overwrite) as temporary:
        figure.savefig(temporary, dpi=dpi, format=temporary.suffix.lstrip(".") or "png")
    return path
