# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN (Schawinski et al. 2017): recover galaxy features from degraded images."""

from ..stretch import GalaxyGANStretch
from .base import ImageToImageModel
from .conditional_gan import l1_reconstruction

__all__ = ["GalaxyGAN"]


class GalaxyGAN(ImageToImageModel):
    """GalaxyGAN (Schawinski et al. 2017): recover galaxy features from degraded images.

    A pix2pix conditional GAN trained on pairs (degraded stamp, original
    stamp) made by `~galaxyml.datasets.make_galaxygan_pairs`; training,
    files and inference are those of `~galaxyml.gan.ImageToImageModel`.

    Parameters
    ----------
    config : {'small', 'paper'}
        Network size, see `~galaxyml.gan.NETWORK_CONFIGS`.
    bands : sequence of str
        Bands, in channel order.
    stretch : `~galaxyml.stretch.ImageStretch`, optional
        Between nanomaggies and the network; `~galaxyml.stretch.GalaxyGANStretch`
        by default.
    l1_weight : float
        lambda of the L1 term.
    seed : int
        Seed of the initial weights and the dropout.
    """

    model_type = "GalaxyGAN"
    pretrained_file = "galaxygan-small.keras"
    hyperparameters = ("l1_weight",)

    def __init__(self, config="small", bands=("g", "r", "i"), stretch=None, l1_weight=100.0,
                 seed=0):
        self.l1_weight = float(l1_weight)
        super().__init__(config, bands, stretch or GalaxyGANStretch(), seed)

    def reconstruction(self, target, generated):
        """``l1_weight`` times the mean absolute error (pix2pix)."""
        return l1_reconstruction(target, generated, self.l1_weight)

    def recover(self, images, samples=None, batch_size=16, overlap=None):
        """Recover degraded images in nanomaggies (see `~galaxyml.gan.ImageToImageModel.transform`).

        The shipped model (`pretrained`) was trained by
        ``scripts/train_galaxygan.py`` on the real SDSS field 2583-2-136.

        Returns
        -------
        recovered : same type as ``images``
            In nanomaggies, with the WCS, metadata and mask; with
            ``samples``, the mean of that many dropout draws and their
            per-pixel standard deviation as the uncertainty.
        """
        return self.transform(images, samples=samples, batch_size=batch_size, overlap=overlap)
