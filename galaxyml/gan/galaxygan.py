# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""GalaxyGAN (Schawinski et al. 2017): recover galaxy features from degraded images."""

import numpy as np
from astropy import units as u
from keras import ops

from ..datasets.pairs import TrainingPairs
from ..degrade.core import galaxygan_kernel
from ..exceptions import InvalidParameterError
from ..restoration.baselines import richardson_lucy_at_noise
from ..stretch import GalaxyGANStretch
from .base import ImageToImageModel
from .conditional_gan import l1_reconstruction
from .networks import NETWORK_CONFIGS, patchgan_discriminator, unet_generator

__all__ = ["GalaxyGAN", "GALAXYGAN_MODES", "FLUX_BLOCK"]

#: ``paper``: the pix2pix of Schawinski et al. (2017), degraded image in, restored image
#: out.  ``refine``: the network refines a Richardson-Lucy deconvolution by the known
#: blur and is told the blur's FWHM and the noise (see `GalaxyGAN`).
GALAXYGAN_MODES = ("paper", "refine")

#: Side in pixels of the blocks in which `GalaxyGAN.flux_mismatch` compares fluxes.
FLUX_BLOCK = 8

#: FWHM (arcsec) that the refine mode's FWHM channel divides by, to keep it of order one.
_FWHM_SCALE = 2.5


class GalaxyGAN(ImageToImageModel):
    """GalaxyGAN (Schawinski et al. 2017): recover galaxy features from degraded images.

    A pix2pix conditional GAN trained on pairs (degraded stamp, original
    stamp) made by `~galaxyml.datasets.make_galaxygan_pairs`; training,
    files and inference are those of `~galaxyml.gan.ImageToImageModel`.

    ``mode='paper'`` is the published network: it sees the degraded image
    and returns the restored one.  ``mode='refine'`` goes beyond the paper,
    in the spirit of Tikhonet (Sureau et al. 2020): the known blur is first
    undone by Richardson-Lucy, stopped by the discrepancy principle at the
    image's measured noise
    (`~galaxyml.restoration.richardson_lucy_discrepancy`); the network sees
    the degraded image, that deconvolution, the noise of each band and the
    blur's FWHM as extra channels, and adds a correction to the
    deconvolution.  Its last layer starts at zero, so training starts from
    the deconvolution rather than from noise.

    Parameters
    ----------
    config : {'small', 'paper'}
        Network size, see `~galaxyml.gan.NETWORK_CONFIGS`.
    bands : sequence of str
        Bands, in channel order.
    stretch : `~galaxyml.stretch.ImageStretch`, optional
        Between nanomaggies and the network; `~galaxyml.stretch.GalaxyGANStretch`
        (the paper's, which clips at 4 nanomaggies) by default.  Train on
        pairs made with ``stretch='data'`` and pass their ``stretch`` to
        keep bright pixels.
    l1_weight : float
        lambda of the L1 term, against the GAN term's 1: 100 in pix2pix; a
        larger one trades the GAN's invented texture for PSNR and SSIM
        (``scripts/train_galaxygan.py`` uses 10000 in refine mode).
    flux_weight : float
        Weight of a flux term added to the L1 one: the relative error of
        each band's flux in blocks of the stamp, in nanomaggies (see
        `flux_mismatch`).  The L1 term works in stretched units, where a
        small offset of the sky costs little but adds up to a large flux
        error over a galaxy's segment; 0 (the paper) leaves it out.
    mode : {'paper', 'refine'}
        See above.
    seed : int
        Seed of the initial weights and the dropout.
    l2_weight : float
        Weight of a mean-squared-error term added to the L1 one.  L1 aims at
        each pixel's median, which where a galaxy's outskirts drown in the
        noise falls below the mean and loses their flux; the squared error
        aims at the mean.  0 (the paper) leaves it out.
    """

    model_type = "GalaxyGAN"
    pretrained_file = "galaxygan-small.keras"
    hyperparameters = ("l1_weight", "l2_weight", "flux_weight", "mode")

    def __init__(self, config="small", bands=("g", "r", "i"), stretch=None, l1_weight=100.0,
                 flux_weight=0.0, mode="paper", seed=0, l2_weight=0.0):
        if mode not in GALAXYGAN_MODES:
            raise InvalidParameterError(f"mode must be one of {GALAXYGAN_MODES}, not {mode!r}")
        for name, weight in (("flux_weight", flux_weight), ("l2_weight", l2_weight)):
            if not weight >= 0:
                raise InvalidParameterError(f"{name} must be >= 0, not {weight}")
        self.l1_weight = float(l1_weight)
        self.l2_weight = float(l2_weight)
        self.flux_weight = float(flux_weight)
        self.mode = mode
        super().__init__(config, bands, stretch or GalaxyGANStretch(), seed)

    @property
    def condition_channels(self):
        """Channels the generator sees: the bands, or (refine) the bands, their
        deconvolution, their noise and the FWHM."""
        n_bands = len(self.bands)
        return n_bands if self.mode == "paper" else 3 * n_bands + 1

    def build_generator(self):
        """The pix2pix U-Net; in refine mode one that adds its output to the deconvolution."""
        filters = NETWORK_CONFIGS[self.config]["generator_filters"]
        n_bands = len(self.bands)
        return unet_generator(self.condition_channels, n_bands, filters, seed=self.seed,
                              refine_channels=None if self.mode == "paper" else n_bands)

    def build_discriminator(self):
        """The pix2pix PatchGAN, conditioned on everything the generator sees."""
        filters = NETWORK_CONFIGS[self.config]["discriminator_filters"]
        return patchgan_discriminator(self.condition_channels, len(self.bands), filters,
                                      seed=self.seed + 1000)

    def reconstruction(self, target, generated):
        """``l1_weight`` times the mean absolute error (pix2pix), plus ``l2_weight``
        times the mean squared error and ``flux_weight`` times `flux_mismatch` where
        those weights are not zero."""
        loss = l1_reconstruction(target, generated, self.l1_weight)
        if self.l2_weight:
            loss = loss + self.l2_weight * ops.mean(ops.square(target - generated))
        if self.flux_weight:
            loss = loss + self.flux_weight * self.flux_mismatch(target, generated)
        return loss

    def flux_mismatch(self, target, generated):
        """Flux moved or lost between blocks of the stamp, relative to the stamp's flux.

        Both batches (n, ny, nx, bands), in the generator's range [-1, 1],
        go back to nanomaggies (the generated one first limited to that
        range, as at inference); each band's flux is summed in blocks of
        `FLUX_BLOCK` pixels on a side; the term is the mean over images and
        bands of the summed absolute block differences over the target's
        summed absolute pixel values.  Blocks rather than the whole stamp,
        so that flux missing from a galaxy's core cannot be made up by a
        brighter sky around it; absolute pixel values, so that the term
        stays finite on stamps of sky, where block sums of noise cancel.
        """
        def nanomaggies(batch):
            return self.stretch.inverse_tensor(
                self._from_generator_range(ops.clip(batch, -1.0, 1.0)))

        def block_flux(image):
            return ops.average_pool(image, FLUX_BLOCK, FLUX_BLOCK) * FLUX_BLOCK ** 2

        target, generated = nanomaggies(target), nanomaggies(generated)
        error = ops.sum(ops.abs(block_flux(generated) - block_flux(target)), axis=(1, 2))
        return ops.mean(error / (ops.sum(ops.abs(target), axis=(1, 2)) + 1e-12))

    def network_samples(self, pairs):
        """The pairs as the network trains on them: in refine mode each condition gets
        the deconvolution by its blur (the manifest's ``fwhm``) and the channels that
        describe the degradation, as in `recover`."""
        return pairs if self.mode == "paper" else _RefinementPairs(pairs, self)

    def recover(self, images, fwhm=None, samples=None, batch_size=16, overlap=None):
        """Recover degraded images in nanomaggies (see `~galaxyml.gan.ImageToImageModel.transform`).

        The shipped model (`pretrained`) was trained by
        ``scripts/train_galaxygan.py`` on the real SDSS field 2583-2-136.

        Parameters
        ----------
        images
            See `~galaxyml.gan.ImageToImageModel.transform`.
        fwhm : `~astropy.units.Quantity` or float, or a list of them
            FWHM of the Gaussian blur to undo, in arcsec at SDSS's
            0.396 arcsec per pixel (the extra blur of
            `~galaxyml.degrade.degrade_like_galaxygan`): one for all images
            or one per image.  Required in refine mode; the paper mode,
            trained without it, ignores it.
        samples, batch_size, overlap
            See `~galaxyml.gan.ImageToImageModel.transform`.

        Returns
        -------
        recovered : same type as ``images``
            In nanomaggies, with the WCS, metadata and mask; with
            ``samples``, the mean of that many dropout draws and their
            per-pixel standard deviation as the uncertainty.

        Raises
        ------
        InvalidParameterError
            Refine mode without ``fwhm``, or a FWHM that is not a positive angle.
        """
        inputs = {} if self.mode == "paper" else {"fwhm": fwhm}
        if self.mode == "refine" and fwhm is None:
            raise InvalidParameterError("mode='refine' needs fwhm, the FWHM of the blur to undo")
        return self.transform(images, samples=samples, batch_size=batch_size, overlap=overlap,
                              **inputs)

    def _network_input(self, data, fwhm=None):
        """The generator's input for (n_bands, ny, nx) nanomaggies, in [-1, 1]."""
        if self.mode == "paper":
            return super()._network_input(data)
        return self._to_generator_range(self.refinement_condition(data, fwhm))

    def _from_network(self, output):
        """Generator output -> nanomaggies.  The refine mode's output is linear, not
        tanh: it is limited to the generator's range [-1, 1], the stretch's clipping
        range, as the inverse asinh turns any overshoot into exponentially bright or
        negative pixels."""
        if self.mode == "refine":
            output = np.clip(output, -1.0, 1.0)
        return super()._from_network(output)

    def refinement_condition(self, data, fwhm):
        """What the refine mode's network sees, in stretched units: (ny, nx, 3 n_bands + 1).

        Channels: the stretched image, its Richardson-Lucy deconvolution by
        the Gaussian blur of FWHM ``fwhm`` stopped by the discrepancy
        principle (stretched), log10 of each band's measured noise in
        nanomaggies plus 2, and the FWHM over 2.5 arcsec.

        Parameters
        ----------
        data : array (n_bands, ny, nx)
            Degraded image in nanomaggies.
        fwhm : `~astropy.units.Quantity` or float
            FWHM of the blur in arcsec.
        """
        fwhm = u.Quantity(fwhm, u.arcsec)
        if fwhm.size != 1 or not fwhm.value > 0:
            raise InvalidParameterError(f"fwhm must be one positive angle, not {fwhm}")
        data = np.asarray(data, float)
        deconvolved, noise = richardson_lucy_at_noise(data, galaxygan_kernel(fwhm))
        n_bands = len(data)
        # Filled plane by plane in float32: a whole frame's condition is 10 planes.
        condition = np.empty(data.shape[1:] + (3 * n_bands + 1,), np.float32)
        condition[..., :n_bands] = np.moveaxis(self._stretched(data), 0, -1)
        condition[..., n_bands:2 * n_bands] = np.moveaxis(self._stretched(deconvolved), 0, -1)
        condition[..., 2 * n_bands:3 * n_bands] = np.log10(noise) + 2
        condition[..., -1] = fwhm.to_value(u.arcsec) / _FWHM_SCALE
        return condition


class _RefinementPairs(TrainingPairs):
    """GalaxyGAN pairs whose conditions are what the refine mode's network sees."""

    def __init__(self, pairs, model):
        super().__init__(pairs.manifest, pairs._make)
        self._model = model

    def sample(self, index):
        degraded, original = self.linear_sample(index)
        condition = self._model.refinement_condition(degraded.data, self.manifest["fwhm"][index])
        target = np.moveaxis(self.stretch(original.data, warn=False), 0, -1)
        return condition, target.astype(np.float32)
