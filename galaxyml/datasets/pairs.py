# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The papers' training pairs for the GANs: (condition, target) stamps made on demand.

`make_galaxygan_pairs` (degraded stamp, original) and `make_psfgan_pairs`
(galaxy with an artificial AGN, galaxy alone) cut the galaxies of a field
and describe each pair by a manifest row (galaxy, sky position, train/test
side, degradation or point source, seed); the pair is made from the row
when a network asks for it.  `TrainingPairs` is the `~galaxyml.datasets.SampleSet`
of such pairs: pairs are kept in nanomaggies and the stretch, whose
parameters travel with the manifest, is applied for the network.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.utils.console import ProgressBar
from scipy.ndimage import fourier_shift
from scipy.optimize import brentq

from ..degrade.agn import add_point_source, host_galaxy
from ..degrade.core import GALAXYGAN_FWHM_GRID, GALAXYGAN_SIGMA_GRID, degrade_like_galaxygan
from ..exceptions import (CutoutOffImageError, InvalidParameterError, NoiseTargetWarning,
                          TooFewSourcesError, UnknownBandError)
from ..io.cutout import MultiBandCutout, multiband_cutout, read_images
from ..io.fits import wcs_pixel_scale
from ..psf.sdss import SDSSPSFBasis
from ..stretch import GalaxyGANStretch, PSFGANStretch
from .samples import SampleSet, seeded_manifest
from .selection import galaxy_catalog, split_by_region

__all__ = ["TrainingPairs", "make_galaxygan_pairs", "make_psfgan_pairs", "galaxygan_grid",
           "degradation_distribution", "data_range_stretch", "cut_galaxy_stamps"]


def galaxygan_grid(fwhms=GALAXYGAN_FWHM_GRID, sigmas=GALAXYGAN_SIGMA_GRID):
    """The (fwhm, sigma) cells of a degradation grid; the paper's 4 x 5 by default."""
    return [(u.Quantity(fwhm, u.arcsec), float(sigma)) for fwhm in fwhms for sigma in sigmas]


def degradation_distribution(fwhm_range=(1.2, 2.7), sigma_range=(1.0, 12.0)):
    """Degradations drawn at random: FWHM uniform and sigma log-uniform between the limits.

    For training: the default limits enclose the paper's grid (FWHM 1.4 to
    2.5 arcsec, sigma 1 to 10), so a network trained on draws meets every
    cell of it and the cells between.

    Parameters
    ----------
    fwhm_range : tuple of float
        Limits of the extra blur's FWHM in arcsec.
    sigma_range : tuple of float
        Limits of the noise factor (at least 1).

    Returns
    -------
    draw : callable
        ``draw(rng) -> (fwhm, sigma)``, for ``grid=`` of `make_galaxygan_pairs`.
    """
    (fwhm_low, fwhm_high), (sigma_low, sigma_high) = fwhm_range, sigma_range
    if not (0 < fwhm_low <= fwhm_high and 1 <= sigma_low <= sigma_high):
        raise InvalidParameterError(f"fwhm_range must be positive and sigma_range at least 1, "
                                    f"both increasing, not {fwhm_range} and {sigma_range}")

    def draw(rng):
        return (float(rng.uniform(fwhm_low, fwhm_high)) * u.arcsec,
                float(np.exp(rng.uniform(np.log(sigma_low), np.log(sigma_high)))))

    return draw


def data_range_stretch(stamps):
    """A stretch that clips nothing the training stamps hold, with the paper's faint contrast.

    `~galaxyml.stretch.PSFGANStretch`, asinh(s x) / asinh(s clip_max), with
    ``clip_max`` 1% above the brightest pixel of ``stamps``, so that bright
    cores come back (the paper's 4-nanomaggy ceiling cost GalaxyGAN a third
    of the flux of bright galaxies), and the softening s at which its slope
    at zero equals the GalaxyGAN stretch's, so that faint structure, which
    the paper's PSNR and SSIM weigh, keeps its contrast for the network.

    Parameters
    ----------
    stamps : iterable of `~galaxyml.io.MultiBandCutout`
        Stamps in nanomaggies (the training side's).
    """
    peak = max(float(np.nanmax(stamp.data * stamp.unit.to(u.nanomaggy))) for stamp in stamps)
    clip_max = float(f"{peak * 1.01:.3g}")
    paper = GalaxyGANStretch()
    step = 1e-6
    slope = float(np.diff(paper(np.array([0.0, step])))[0]) / step
    if not slope * clip_max > 1:  # too faint a peak for an asinh to bend
        return PSFGANStretch(clip_max=clip_max)
    softening = brentq(lambda s: s / np.arcsinh(s * clip_max) - slope, 1e-6, 1e6)
    return PSFGANStretch(clip_max=clip_max, softening=float(f"{softening:.4g}"))


class TrainingPairs(SampleSet):
    """(condition, target) pairs for the GANs, described by a manifest.

    Made by `make_galaxygan_pairs` and `make_psfgan_pairs`, or read from a
    directory with `TrainingPairs.read`; streaming, augmentation and
    writing are those of `~galaxyml.datasets.SampleSet`.

    Parameters
    ----------
    manifest : `~astropy.table.QTable`
        One row per pair, with at least ``pair_id``, ``galaxy_id``,
        ``split`` and ``seed``; ``meta`` holds ``kind``, ``bands`` and
        ``stretch``.
    make : callable
        ``make(row) -> (condition, target)``, each a
        `~galaxyml.io.MultiBandCutout`-like object with ``data`` of shape
        (n_bands, ny, nx) in nanomaggies and a ``wcs``.
    """

    roles = ("COND", "TARGET")
    id_column = "pair_id"
    file_prefix = "pair"

    def linear_pair(self, index):
        """Pair ``index`` (a row number) as two images in nanomaggies, with WCS."""
        return self.linear_sample(index)

    def pair(self, index):
        """Pair ``index`` stretched for a network: two float32 arrays (ny, nx, n_bands)."""
        return self.sample(index)


def make_galaxygan_pairs(field_images, catalog=None, bands="gri", size=128, grid=None,
                         n_per_galaxy=1, stretch=None, max_shift=0.0, test_fraction=0.5,
                         guard=None, seed=0, progress=True, **catalog_kwargs):
    """GalaxyGAN pairs (degraded stamp, original stamp) from a field.

    Every galaxy of the catalogue is cut in ``bands`` on the grid of the
    detection band (`~galaxyml.io.multiband_cutout`) and degraded with
    `~galaxyml.degrade.degrade_like_galaxygan` for every cell of the grid,
    each pair with its own seed.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path of one field.
    catalog : `~astropy.table.QTable`, optional
        Galaxies (``id``, ``x``, ``y`` in pixels of the r band, or of the
        first band without r, ``ra``, ``dec``);
        `~galaxyml.datasets.galaxy_catalog` by default (``catalog_kwargs``
        go to it).  Galaxies whose stamp has pixels off any band's image
        are left out.
    bands : str or sequence of str
        Bands of the stamps (channels).
    size : int
        Side of the stamps in pixels.
    grid : sequence of (fwhm, sigma), or callable, optional
        Degradations: every cell of a grid for every galaxy (`galaxygan_grid`,
        the paper's 20 cells, by default), or a distribution, a function
        ``draw(rng) -> (fwhm, sigma)`` called ``n_per_galaxy`` times per
        galaxy with a `numpy.random.Generator`.
    n_per_galaxy : int
        Draws per galaxy from a distribution (ignored for a grid).
    stretch : `~galaxyml.stretch.ImageStretch` or 'data', optional
        `~galaxyml.stretch.GalaxyGANStretch` (the paper's) by default;
        ``'data'``: `data_range_stretch` of the training side's stamps,
        which clips none of their pixels.
    max_shift : float
        Shift every pair's stamp by a random offset of up to this many
        pixels in x and y (integer and sub-pixel), drawn per pair: the
        galaxy is not always centred on a pixel or on the stamp.  Shifts
        are made in Fourier space on a larger stamp, which keeps white
        noise white, and the stamp's WCS follows them.
    test_fraction, guard
        The train/test split by right ascension, see
        `~galaxyml.datasets.split_by_region`; ``guard`` defaults to half a
        stamp's diagonal, so no stamp of the test side overlaps one of the
        train side.
    seed : int
        Seed of every pair's noise.
    progress : bool
        Show a progress bar while cutting stamps.

    Returns
    -------
    pairs : `TrainingPairs`
        Manifest columns ``pair_id``, ``galaxy_id``, ``ra``, ``dec``,
        ``split``, ``fwhm``, ``sigma``, ``dx``, ``dy`` (the shift in
        pixels), ``seed``.
    """
    bands = tuple(bands)
    if not max_shift >= 0:
        raise InvalidParameterError(f"max_shift must be at least 0, not {max_shift}")
    # A margin the Fourier shift's wrap-around stays in, cropped away afterwards.
    margin = int(np.ceil(max_shift)) + 4 if max_shift else 0
    if grid is None:
        grid = galaxygan_grid()
    draw_rng = np.random.default_rng([seed, 1])

    def cells():
        drawn = ([grid(draw_rng) for _ in range(n_per_galaxy)] if callable(grid) else grid)
        return [(u.Quantity(fwhm, u.arcsec), float(sigma)) for fwhm, sigma in drawn]

    images, catalog, split = _prepare(field_images, bands, catalog, size, test_fraction, guard,
                                      catalog_kwargs)
    reference = "r" if "r" in images else bands[0]
    stamps = cut_galaxy_stamps(images, bands, catalog, size + 2 * margin, reference, progress)

    rows = []
    for galaxy, side in zip(catalog, split):
        if int(galaxy["id"]) not in stamps:
            continue
        for fwhm, sigma in cells():
            dx, dy = draw_rng.uniform(-max_shift, max_shift, 2) if max_shift else (0.0, 0.0)
            rows.append((int(galaxy["id"]), _degrees(galaxy["ra"]), _degrees(galaxy["dec"]),
                         str(side), fwhm.to_value(u.arcsec), sigma, float(dx), float(dy)))
    manifest = seeded_manifest(rows, ["galaxy_id", "ra", "dec", "split", "fwhm", "sigma", "dx",
                                      "dy"], seed, "pair_id")
    manifest["fwhm"].unit = u.arcsec
    if isinstance(stretch, str) and stretch == "data":
        training = manifest["galaxy_id"][manifest["split"] == "train"]
        ids = np.unique(training if len(training) else manifest["galaxy_id"])
        stretch = data_range_stretch(stamps[int(k)] for k in ids)
    stretch = GalaxyGANStretch() if stretch is None else stretch
    manifest.meta.update(kind="galaxygan", bands=list(bands), stretch=stretch.to_dict(),
                         size=size, reference_band=reference)

    def make(row):
        original = _shifted_crop(stamps[int(row["galaxy_id"])], row["dx"], row["dy"], margin)
        with warnings.catch_warnings():
            # At sigma = 1 the recipe's truncated noise estimate often finds the blurred
            # stamp as noisy as the original: no noise is added, as in the paper's code.
            warnings.simplefilter("ignore", NoiseTargetWarning)
            degraded, _ = degrade_like_galaxygan(original, row["fwhm"], row["sigma"],
                                                 seed=int(row["seed"]))
        return degraded, original

    return TrainingPairs(manifest, make)


def make_psfgan_pairs(field_images, psfield, catalog=None, band="r", size=128,
                      contrast_range=(0.1, 10.0), contrasts=None, n_per_galaxy=1,
                      no_agn_fraction=0.0, psf_scale=1.0, stretch=None, test_fraction=0.5,
                      guard=None, seed=0, progress=True, **catalog_kwargs):
    """PSFGAN pairs (galaxy with an artificial AGN, the galaxy alone) from a field.

    Each galaxy stamp gets point sources at its centroid, with contrasts
    (point-source flux over the host's Kron flux, `~galaxyml.degrade.host_galaxy`)
    drawn uniformly in log between the limits or taken from a list, shaped
    by the SDSS KL-PSF at the galaxy's position on the frame (optionally
    made wider or narrower), with their photon noise.  A pair of contrast 0
    has no point source: its condition is the galaxy itself, so that a
    network learns to leave galaxies without an AGN alone.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path; must hold ``band``.
    psfield : str or path
        The field's psField file.
    catalog : `~astropy.table.QTable`, optional
        Galaxies; `~galaxyml.datasets.galaxy_catalog` by default.
    band : str
        The band of the stamps (the paper used r).
    size : int
        Side of the stamps in pixels.
    contrast_range : tuple of float
        Limits of the log-uniform contrast distribution; the paper's 0.1 to 10.
    contrasts : sequence of float, optional
        Instead of random draws, every galaxy gets each of these contrasts
        (``n_per_galaxy`` realisations of each, with their own noise), as
        for an evaluation; 0 means no point source.
    n_per_galaxy : int
        Pairs per galaxy (per contrast with ``contrasts``).
    no_agn_fraction : float
        Of the random draws, the share (in expectation) given contrast 0.
    psf_scale : float or tuple of float
        Width of the point source's PSF relative to the psField PSF
        (`~galaxyml.psf.PSFModel.scaled`): one factor, or (low, high) to
        draw one per pair log-uniformly (training on several PSFs).
    stretch : `~galaxyml.stretch.PSFGANStretch`, optional
        By default its upper limit is just above the brightest pixel of the
        training side's conditions (host peak plus point-source peak), so
        no bright training pixel is clipped and the test side plays no
        part in it.
    test_fraction, guard, seed, progress
        As for `make_galaxygan_pairs`.

    Returns
    -------
    pairs : `TrainingPairs`
        Manifest columns ``pair_id``, ``galaxy_id``, ``ra``, ``dec``,
        ``split``, ``contrast``, ``ps_flux``, ``host_flux``, ``x_ps``,
        ``y_ps`` (in the stamp), ``frame_x``, ``frame_y`` (the galaxy on the
        frame, where its PSF is evaluated), ``psf_scale``, ``seed``.
    """
    low, high = contrast_range
    if not 0 < low <= high:
        raise InvalidParameterError(f"contrast_range must be positive and increasing, not "
                                    f"{contrast_range}")
    if contrasts is not None and not np.all(np.asarray(contrasts, float) >= 0):
        raise InvalidParameterError(f"contrasts must be positive or 0, not {contrasts}")
    if not 0 <= no_agn_fraction <= 1:
        raise InvalidParameterError(f"no_agn_fraction must lie in [0, 1], not {no_agn_fraction}")
    scale_low, scale_high = np.broadcast_to(np.asarray(psf_scale, float), (2,))
    if not 0 < scale_low <= scale_high:
        raise InvalidParameterError(f"psf_scale must be positive (a factor or an increasing "
                                    f"range), not {psf_scale}")
    images, catalog, split = _prepare(field_images, (band,), catalog, size, test_fraction,
                                      guard, catalog_kwargs)
    stamps = cut_galaxy_stamps(images, (band,), catalog, size, band, progress)
    basis = SDSSPSFBasis(psfield, band)
    psfs = {int(g["id"]): basis.at(float(g["y"]), float(g["x"])) for g in catalog}

    rng = np.random.default_rng(seed)
    rows, peaks = [], []
    for galaxy, side in zip(catalog, split):
        galaxy_id = int(galaxy["id"])
        if galaxy_id not in stamps:
            continue
        stamp = stamps[galaxy_id][band]
        x_host, y_host, host_flux = host_galaxy(stamp)
        host_flux = host_flux.to_value(u.nanomaggy)
        if contrasts is not None:
            drawn = np.repeat(np.asarray(contrasts, float), n_per_galaxy)
        else:
            drawn = 10 ** rng.uniform(np.log10(low), np.log10(high), n_per_galaxy)
            drawn[rng.uniform(size=n_per_galaxy) < no_agn_fraction] = 0.0
        scales = np.exp(rng.uniform(np.log(scale_low), np.log(scale_high), len(drawn)))
        for contrast, scale in zip(drawn, scales):
            ps_flux = contrast * host_flux
            rows.append((galaxy_id, _degrees(galaxy["ra"]), _degrees(galaxy["dec"]), str(side),
                         contrast, ps_flux, host_flux, x_host, y_host, float(galaxy["x"]),
                         float(galaxy["y"]), scale))
            # A PSF narrowed by s has a peak up to 1 / s^2 times higher.
            psf_peak = min(psfs[galaxy_id].array.max() / min(scale, 1.0) ** 2, 1.0)
            peaks.append((str(side), float(np.nanmax(stamp.data)) + ps_flux * psf_peak))
    manifest = seeded_manifest(rows, ["galaxy_id", "ra", "dec", "split", "contrast", "ps_flux",
                                      "host_flux", "x_ps", "y_ps", "frame_x", "frame_y",
                                      "psf_scale"], seed, "pair_id")
    manifest["ps_flux"].unit = u.nanomaggy
    manifest["host_flux"].unit = u.nanomaggy
    if stretch is None:
        training = [value for side, value in peaks if side == "train"]
        peak = max(training or [value for _, value in peaks])
        stretch = PSFGANStretch(clip_max=float(f"{peak * 1.01:.3g}"))
    manifest.meta.update(kind="psfgan", bands=[band], stretch=stretch.to_dict(), size=size,
                         psfield=str(psfield))

    def make(row):
        original = stamps[int(row["galaxy_id"])]
        psf = psfs[int(row["galaxy_id"])]
        if row["ps_flux"] == 0:
            return original.select(original.bands), original
        if row["psf_scale"] != 1:
            psf = psf.scaled(row["psf_scale"])
        with_agn, _ = add_point_source(original[band], psf, flux=row["ps_flux"],
                                       position=(row["x_ps"], row["y_ps"]),
                                       seed=int(row["seed"]))
        # A cutout with the source's photon noise in its uncertainty and the frame's
        # metadata (psField, origin): what remove_point_source and the fits take.
        uncertainty = (None if with_agn.uncertainty is None
                       else with_agn.uncertainty.array[None])
        return MultiBandCutout(with_agn.data[None], (band,), original.wcs, original.unit,
                               uncertainty=uncertainty, mask=original.mask,
                               meta=original.meta), original

    return TrainingPairs(manifest, make)


def _prepare(field_images, bands, catalog, size, test_fraction, guard, catalog_kwargs):
    images = read_images(field_images)
    missing = [band for band in bands if band not in images]
    if missing:
        raise UnknownBandError(f"bands {missing} are not among the field's images "
                               f"{tuple(images)}")
    if catalog is None:
        detection = "r" if "r" in images else bands[0]
        catalog = galaxy_catalog(images, detection_band=detection, size=size, **catalog_kwargs)
    if len(catalog) < 2:
        raise TooFewSourcesError(f"only {len(catalog)} galaxies were selected; pairs need at "
                                 "least 2 (one on each side of the split)")
    if guard is None:
        reference = images["r" if "r" in images else bands[0]]
        guard = (size / np.sqrt(2) * u.pix * wcs_pixel_scale(reference.wcs)).to(u.deg)
    split, _ = split_by_region(catalog, test_fraction, guard)
    keep = split != "guard"
    return images, catalog[keep], split[keep]


def cut_galaxy_stamps(images, bands, catalog, size, reference="r", progress=True):
    """Multi-band stamps of the catalogue's galaxies that lie wholly on every band's image.

    Parameters
    ----------
    images : mapping
        Band -> `~astropy.nddata.CCDData` of one field.
    bands : sequence of str
        Bands of the stamps, in channel order.
    catalog : `~astropy.table.QTable`
        Galaxies with ``id``, ``x`` and ``y`` in pixels of ``reference``.
    size : int
        Side of the stamps in pixels.
    reference : str
        Band whose pixel grid the stamps are cut on.
    progress : bool
        Show a progress bar.

    Returns
    -------
    stamps : dict
        Galaxy id -> `~galaxyml.io.MultiBandCutout`.
    """
    subset = {band: images[band] for band in bands}
    if reference not in subset:
        subset = {reference: images[reference], **subset}
    rows = list(catalog)
    stamps = {}
    for galaxy in (ProgressBar(rows) if progress else rows):
        try:
            cutout = multiband_cutout(subset, (float(galaxy["x"]), float(galaxy["y"])), size,
                                      reference_band=reference, mode="strict")
        except CutoutOffImageError:
            continue
        if tuple(cutout.bands) != bands:
            cutout = cutout.select(bands)
        if np.all(np.isfinite(cutout.data)):  # else a band's image ends inside the stamp
            stamps[int(galaxy["id"])] = cutout
    return stamps


def _shifted_crop(cutout, dx, dy, margin):
    """``cutout`` shifted by (dx, dy) pixels, its ``margin`` cropped; the WCS follows."""
    if not margin:
        return cutout
    inside = (slice(None), slice(margin, -margin), slice(margin, -margin))
    shifted = np.stack([np.fft.irfft2(fourier_shift(np.fft.rfft2(plane), (dy, dx),
                                                    n=plane.shape[1]), s=plane.shape)
                        for plane in cutout.data])
    # Uncertainty and mask move by the nearest whole pixel.
    whole = (slice(None), slice(margin - round(dy), -margin - round(dy) or None),
             slice(margin - round(dx), -margin - round(dx) or None))
    wcs = cutout.wcs.deepcopy()
    wcs.wcs.crpix = wcs.wcs.crpix + np.array([dx, dy]) - margin
    uncertainty = None if cutout.uncertainty is None else cutout.uncertainty[whole]
    return MultiBandCutout(shifted[inside], cutout.bands, wcs, cutout.unit,
                           uncertainty=uncertainty, mask=cutout.mask[whole], meta=cutout.meta)


def _degrees(angle):
    return float(u.Quantity(angle, u.deg).to_value(u.deg))
