# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated SDSS fields: galaxies and stars in the SDSS frame format, with a truth table."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.modeling.models import Sersic2D
from astropy.table import QTable
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from ..exceptions import InvalidParameterError
from ..io.sdss import FPM_MASK_PLANES, SDSS_BANDS, SDSS_PIXEL_SCALE, nanomaggies_to_mag
from ..io.writing import atomic_output, provenance_header, write_fits
from ..psf.models import GAUSSIAN_FWHM_TO_SIGMA, GaussianPSF
from ..utils._sdss import DEFAULT_DARK_VARIANCE, DEFAULT_GAIN, FRAME_OFFSET, band_index, sky_counts
from .sdss import SDSSFieldFiles, _names

__all__ = ["SimulatedField", "simulate_sdss_field", "simulate_galaxy_stamps", "fpm_hdulist"]


# Typical SDSS values per band (u, g, r, i, z), close to those of run 2583.
_TYPICAL_FWHM = dict(zip(SDSS_BANDS, (1.45, 1.35, 1.2, 1.15, 1.25)))      # arcsec
_TYPICAL_SKY = dict(zip(SDSS_BANDS, (24.0, 81.0, 150.0, 216.0, 142.0)))    # counts
_TYPICAL_NMGY = dict(zip(SDSS_BANDS, (0.0095, 0.0045, 0.0055, 0.0066, 0.032)))  # nmgy/count
# Colours relative to r (m_band - m_r) of a bulge (old, red) and a disk (bluer) population.
_BULGE_COLOUR = dict(zip(SDSS_BANDS, (2.4, 0.8, 0.0, -0.4, -0.75)))
_DISK_COLOUR = dict(zip(SDSS_BANDS, (1.4, 0.45, 0.0, -0.25, -0.4)))
_EXPTIME = 53.907456  # seconds, the SDSS drift-scan exposure
_PSF_SIZE = 51        # pixels, as the SDSS KL-PSF eigen-images


@dataclass
class SimulatedField:
    """What `simulate_sdss_field` wrote.

    Attributes
    ----------
    files : `~galaxyml.datasets.SDSSFieldFiles`
        The frame and fpM files (band -> path) and the psField file.
    truth : `~astropy.table.QTable`
        One row per source: ``id``, ``kind`` (``galaxy`` or ``star``),
        ``ra``, ``dec``, ``x``, ``y`` (0-based pixel position in the
        reference band), ``flux_<band>`` (nanomaggies, as rendered),
        ``mag_<band>`` (AB), and for galaxies ``bulge_to_total``,
        ``r_eff_disk`` and ``r_eff_bulge`` (arcsec), ``axis_ratio`` and
        ``theta`` (disk position angle).
    truth_path : `~pathlib.Path`
        The truth table as ECSV.
    """

    files: SDSSFieldFiles
    truth: QTable
    truth_path: Path


def _field_wcs(center, shape, offset):
    """SDSS-like TAN WCS: rows run along RA, columns along Dec, 0.396 arcsec pixels."""
    scale = SDSS_PIXEL_SCALE.to_value(u.deg / u.pix)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [center.icrs.ra.deg, center.icrs.dec.deg]
    wcs.wcs.crpix = [(shape[1] + 1) / 2 + offset[0], (shape[0] + 1) / 2 + offset[1]]
    wcs.wcs.cd = [[0.0, scale], [scale, 0.0]]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs


def _draw_galaxies(rng, n, shape, margin):
    """Positions, magnitudes and bulge plus disk structure of ``n`` galaxies."""
    # Number counts dN/dm ~ 10^(0.35 m) between r = 15 and 20.5, by inverse CDF.
    lo, hi, slope = 10 ** (0.35 * 15.0), 10 ** (0.35 * 20.5), 0.35
    mag_r = np.log10(lo + rng.uniform(size=n) * (hi - lo)) / slope
    # Disk sizes shrink with magnitude (about 6 arcsec at r = 15, 1 arcsec at 20).
    r_disk = 10 ** (0.55 - 0.15 * (mag_r - 15.0) + rng.normal(0, 0.12, n))
    return {
        "x": rng.uniform(margin, shape[1] - 1 - margin, n),
        "y": rng.uniform(margin, shape[0] - 1 - margin, n),
        "mag_r": mag_r,
        "bulge_to_total": rng.beta(1.5, 2.5, n),
        "r_eff_disk": r_disk,
        "r_eff_bulge": r_disk * rng.uniform(0.2, 0.5, n),
        "axis_ratio": rng.uniform(0.25, 1.0, n),
        "theta": rng.uniform(0, np.pi, n),
    }


def _draw_stars(rng, n, shape, margin):
    return {
        "x": rng.uniform(margin, shape[1] - 1 - margin, n),
        "y": rng.uniform(margin, shape[0] - 1 - margin, n),
        "mag_r": rng.uniform(15.0, 21.0, n),
        "g_r": rng.uniform(0.3, 1.4, n),
    }


def _star_colour(band, g_r):
    """m_band - m_r along a simple stellar locus."""
    return {"u": 1.0 + 2.0 * g_r, "g": g_r, "r": 0.0 * g_r, "i": -0.35 * g_r,
            "z": -0.55 * g_r}[band]


def _sersic_stamp(x, y, r_eff_pix, n, axis_ratio, theta, oversample=3):
    """Unit-flux Sersic profile on a stamp around (x, y), integrated over pixels.

    Returns the stamp and the (row, column) slice origin; the stamp is
    normalised to the flux inside it, so what is drawn is what the truth
    table reports.
    """
    half = int(np.clip(np.ceil(6 * r_eff_pix), 8, 80))
    x0, y0 = int(round(x)) - half, int(round(y)) - half
    size = 2 * half + 1
    fine = (np.arange(size * oversample) + 0.5) / oversample - 0.5
    yy, xx = np.meshgrid(fine + y0, fine + x0, indexing="ij")
    model = Sersic2D(amplitude=1.0, r_eff=r_eff_pix, n=n, x_0=x, y_0=y,
                     ellip=1 - axis_ratio, theta=theta)
    stamp = model(xx, yy).reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return stamp / stamp.sum(), (y0, x0)


def _add_stamp(image, stamp, origin, scale):
    """Add ``scale * stamp`` at ``origin`` (row, column), clipped to the image."""
    y0, x0 = origin
    ys = slice(max(y0, 0), min(y0 + stamp.shape[0], image.shape[0]))
    xs = slice(max(x0, 0), min(x0 + stamp.shape[1], image.shape[1]))
    if ys.start < ys.stop and xs.start < xs.stop:
        image[ys, xs] += scale * stamp[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        return scale * stamp[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0].sum()
    return 0.0


def _gaussian_star(x, y, sigma, half=12):
    """Unit-flux circular Gaussian integrated exactly over the pixels around (x, y)."""
    x0, y0 = int(round(x)) - half, int(round(y)) - half
    edges = np.arange(2 * half + 2) - 0.5
    cdf_x = 0.5 * (1 + erf((edges + x0 - x) / (np.sqrt(2) * sigma)))
    cdf_y = 0.5 * (1 + erf((edges + y0 - y) / (np.sqrt(2) * sigma)))
    return np.outer(np.diff(cdf_y), np.diff(cdf_x)), (y0, x0)


def _binned_sky(rng, level, shape):
    """SDSS-style binned sky (8x8 bins) with a gentle gradient, and its interpolation axes."""
    ny_bins, nx_bins = -(-shape[0] // 8) + 6, -(-shape[1] // 8)
    gy, gx = np.meshgrid(np.linspace(-1, 1, ny_bins), np.linspace(-1, 1, nx_bins), indexing="ij")
    tilt = rng.uniform(-0.02, 0.02, 2)
    allsky = level * (1 + tilt[0] * gy + tilt[1] * gx)
    xinterp = (np.arange(shape[1]) - 3.5) / 8
    yinterp = (np.arange(shape[0]) + 4.5) / 8
    return allsky.astype(np.float32), xinterp.astype(np.float32), yinterp.astype(np.float32)


def _frame_hdulist(image, calibvec, allsky, xinterp, yinterp, wcs, band, ids, inputs=()):
    run, camcol, field, rerun = ids
    header = wcs.to_header()
    header["BUNIT"] = ("nanomaggy", "1 nanomaggy = 3.631e-6 Jy")
    header["FILTER"] = (band, "filter used")
    header["RUN"], header["CAMCOL"] = run, camcol
    header["FRAME"] = (field + FRAME_OFFSET[band], "Frame sequence number within the run")
    header["RERUN"] = str(rerun)
    header["EXPTIME"] = (f"{_EXPTIME}", "Exposure time (seconds)")
    header["NMGY"] = (float(np.median(calibvec)), "Calibration factor [nMgy per count]")
    header["SIMULATE"] = (True, "simulated by galaxyml, not an SDSS observation")
    provenance_header("simulate_sdss_field", inputs, header)
    sky = fits.BinTableHDU.from_columns([
        fits.Column("ALLSKY", format=f"{allsky.size}E", array=allsky[None],
                    dim=f"({allsky.shape[1]},{allsky.shape[0]})"),
        fits.Column("XINTERP", format=f"{xinterp.size}E", array=xinterp[None]),
        fits.Column("YINTERP", format=f"{yinterp.size}E", array=yinterp[None]),
    ])
    # HDU 3 of a real frame is the asTrans astrometry; the WCS alone describes a simulation.
    astrometry = fits.BinTableHDU.from_columns([
        fits.Column("RUN", format="J", array=[run]),
        fits.Column("CAMCOL", format="J", array=[camcol]),
        fits.Column("FILTER", format="1A", array=[band]),
        fits.Column("FIELD", format="J", array=[field]),
    ])
    return fits.HDUList([fits.PrimaryHDU(image.astype(np.float32), header=header),
                         fits.ImageHDU(calibvec.astype(np.float32)), sky, astrometry])


def fpm_hdulist(spans_per_plane, shape, ids):
    """An fpM mask file: for each plane, one object made of spans.

    Parameters
    ----------
    spans_per_plane : dict
        Plane name (from `~galaxyml.io.FPM_MASK_PLANES`) -> list of
        (row, first column, last column).
    shape : tuple of int
        (rows, columns) of the frame.
    ids : tuple of int
        (run, camcol, field).
    """
    primary = fits.PrimaryHDU()
    primary.header.update({"RUN": ids[0], "CAMCOL": ids[1], "FIELD": ids[2],
                           "MASKROWS": shape[0], "MASKCOLS": shape[1],
                           "NPLANE": len(FPM_MASK_PLANES), "SIMULATE": True})
    hdus = [primary]
    for plane in FPM_MASK_PLANES:
        spans = spans_per_plane.get(plane, [])
        # Spans are stored as big-endian int16 triples in a variable-length byte column.
        objects = [np.frombuffer(np.asarray(spans, ">i2").tobytes(), np.uint8)] if spans else []
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("s", format="PB()", array=objects)], name=f"S_MASK_{plane}"))
    return fits.HDUList(hdus)


def _psfield_hdulist(fwhm_arcsec, sky, ids):
    """A psField with one-component KL-PSFs (the Gaussian PSFs) and the noise parameters."""
    run, camcol, field, _ = ids
    primary = fits.PrimaryHDU()
    primary.header.update({"RUN": run, "CAMCOL": camcol, "FIELD": field, "FILTERS": "u g r i z",
                           "SIMULATE": True})
    hdus = [primary]
    scale = SDSS_PIXEL_SCALE.to_value(u.arcsec / u.pix)
    for band in SDSS_BANDS:
        psf = GaussianPSF(fwhm_arcsec[band] / scale).render(_PSF_SIZE).astype(np.float32)
        coefficients = np.zeros((1, 5, 5), np.float32)
        coefficients[0, 0, 0] = 1.0
        hdus.append(fits.BinTableHDU.from_columns([
            fits.Column("nrow_b", format="J", array=[1]),
            fits.Column("ncol_b", format="J", array=[1]),
            fits.Column("c", format="25E", dim="(5,5)", array=coefficients),
            fits.Column("RNROW", format="J", array=[_PSF_SIZE]),
            fits.Column("RNCOL", format="J", array=[_PSF_SIZE]),
            fits.Column("RROWS", format="PE()", array=[psf.ravel()]),
        ]))
    gains = [DEFAULT_GAIN[camcol][band_index(b)] for b in SDSS_BANDS]
    dark = [DEFAULT_DARK_VARIANCE[camcol][band_index(b)] for b in SDSS_BANDS]
    skysig = [np.sqrt(sky[b] / g + d) for b, g, d in zip(SDSS_BANDS, gains, dark)]
    columns = {"field": [field], "sky": [[sky[b] for b in SDSS_BANDS]], "skysig": [skysig],
               "psf_width": [[fwhm_arcsec[b] for b in SDSS_BANDS]], "gain": [gains],
               "dark_variance": [dark]}
    hdus.append(fits.BinTableHDU.from_columns(
        [fits.Column(name, format="J" if name == "field" else "5E", array=np.array(values))
         for name, values in columns.items()]))
    return fits.HDUList(hdus)


def simulate_sdss_field(directory, bands="gri", shape=(512, 640), n_galaxies=30, n_stars=15,
                        psf_fwhm=None, center=None, run=9999, camcol=3, field=42, rerun=301,
                        max_offset=5.0, seed=None, overwrite=False):
    """Write a synthetic SDSS field in the SDSS frame format, with a truth table.

    Each band is a ``frame-*.fits`` file like SDSS's (image in nanomaggies,
    sky subtracted, with a TAN WCS; calibration vector; binned sky table;
    astrometry table) with an ``fpM`` mask file (one bad column per band,
    interpolated over and flagged INTERP, as SDSS does), and a ``psField``
    file holds the PSFs and the noise parameters.  The bands are offset from
    one another by a few pixels, as in SDSS, so they must be aligned through
    the WCS.

    Galaxies are a de Vaucouleurs bulge plus an exponential disk with
    realistic magnitudes (number counts rising as 10^(0.35 m) from r = 15
    to 20.5), sizes (disks of about 6 arcsec at r = 15 and 1 arcsec at
    r = 20), bulge fractions, shapes and colours; stars follow a simple
    stellar locus.  Every source is convolved with a circular Gaussian PSF
    of the band's FWHM.  Noise follows the SDSS model: Poisson noise of
    the source and sky electrons plus the dark variance, in counts.

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        Where to write (created if needed).
    bands : str or sequence of str
        Bands to simulate, from ``ugriz``; the first of ``r``, or else the
        first band, is the reference whose pixel grid the truth refers to.
    shape : tuple of int
        (rows, columns) of each frame (SDSS frames are 1489 x 2048).
    n_galaxies, n_stars : int
        Numbers of sources.
    psf_fwhm : `~astropy.units.Quantity` or dict, optional
        PSF FWHM, one angle for every band or band -> angle; typical SDSS
        values by default.
    center : `~astropy.coordinates.SkyCoord`, optional
        Sky position of the frame centre; (RA, Dec) = (180, 0) deg by default.
    run, camcol, field, rerun : int
        Identifiers written in the headers and file names.
    max_offset : float
        Largest offset in pixels between a band's grid and the reference's.
    seed : int or `numpy.random.Generator`, optional
        Seed: the same seed writes the same field.
    overwrite : bool
        Replace existing files of the same names.

    Returns
    -------
    field : `SimulatedField`
    """
    for band in bands:
        band_index(band, where="simulate_sdss_field")
    bands = [band for band in SDSS_BANDS if band in bands]
    if len(shape) != 2 or min(shape) < 32:
        raise InvalidParameterError(f"shape must be (rows, columns) of at least 32 pixels, "
                                    f"not {shape}")
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = (int(run), int(camcol), int(field), int(rerun))
    center = SkyCoord(180.0, 0.0, unit="deg") if center is None else center
    fwhm = _fwhm_per_band(psf_fwhm)
    scale = SDSS_PIXEL_SCALE.to_value(u.arcsec / u.pix)
    reference = "r" if "r" in bands else bands[0]

    offsets = {band: (0.0, 0.0) if band == reference
               else tuple(rng.uniform(-max_offset, max_offset, 2)) for band in bands}
    wcs = {band: _field_wcs(center, shape, offsets[band]) for band in bands}
    galaxies = _draw_galaxies(rng, n_galaxies, shape, margin=12)
    stars = _draw_stars(rng, n_stars, shape, margin=12)
    sky_ref = wcs[reference].pixel_to_world(np.r_[galaxies["x"], stars["x"]],
                                            np.r_[galaxies["y"], stars["y"]])

    fluxes = {band: np.zeros(n_galaxies + n_stars) for band in bands}
    paths, fpm = {}, {}
    for band in bands:
        x, y = wcs[band].world_to_pixel(sky_ref)
        sigma = fwhm[band] / scale * GAUSSIAN_FWHM_TO_SIGMA
        image = np.zeros(shape)
        for k in range(n_galaxies):
            fluxes[band][k] = _render_galaxy(image, galaxies, k, x[k], y[k], band, scale)
        image = gaussian_filter(image, sigma, mode="constant", truncate=6.0)
        for k in range(n_stars):
            flux = 10 ** (-0.4 * (stars["mag_r"][k] + _star_colour(band, stars["g_r"][k]) - 22.5))
            stamp, origin = _gaussian_star(x[n_galaxies + k], y[n_galaxies + k], sigma)
            fluxes[band][n_galaxies + k] = _add_stamp(image, stamp, origin, flux)
        frame = _observe(rng, image, band, camcol, shape)
        bad_column = int(rng.integers(1, shape[1] - 1))
        frame[0][:, bad_column] = 0.5 * (frame[0][:, bad_column - 1] + frame[0][:, bad_column + 1])
        name = directory / _names("frame", run, camcol, field, band)[1]
        paths[band] = write_fits(_frame_hdulist(*frame, wcs[band], band, ids), name,
                                 overwrite=overwrite)
        # SDSS interpolates over bad columns and flags them INTERP in the fpM file.
        interpolated = [(row, bad_column, bad_column) for row in range(shape[0])]
        fpm[band] = write_fits(fpm_hdulist({"INTERP": interpolated}, shape, ids[:3]),
                               directory / _names("fpM", run, camcol, field, band)[2],
                               overwrite=overwrite)
    truth = _truth_table(galaxies, stars, sky_ref, fluxes)
    psfield = write_fits(_psfield_hdulist(fwhm, _TYPICAL_SKY, ids),
                         directory / _names("psField", run, camcol, field)[1], overwrite=overwrite)
    truth.meta.update({"reference_band": reference, "run": run, "camcol": camcol, "field": field,
                       "seed": seed if isinstance(seed, (int, type(None))) else "Generator",
                       "psf_fwhm_arcsec": {band: fwhm[band] for band in bands}})
    truth_path = directory / f"truth-{run:06d}-{camcol}-{field:04d}.ecsv"
    with atomic_output(truth_path, overwrite=overwrite) as temporary:
        truth.write(temporary, format="ascii.ecsv")
    files = SDSSFieldFiles(run, camcol, field, rerun, frames=paths, psfield=psfield, fpm=fpm)
    return SimulatedField(files, truth, truth_path)


def _fwhm_per_band(psf_fwhm):
    """Band -> FWHM in arcsec for all SDSS bands."""
    if psf_fwhm is None:
        return dict(_TYPICAL_FWHM)
    if isinstance(psf_fwhm, dict):
        result = dict(_TYPICAL_FWHM)
        result.update({band: u.Quantity(value, u.arcsec).to_value(u.arcsec)
                       for band, value in psf_fwhm.items()})
        return result
    value = u.Quantity(psf_fwhm, u.arcsec).to_value(u.arcsec)
    if not value > 0:
        raise InvalidParameterError(f"psf_fwhm must be positive, not {psf_fwhm}")
    return dict.fromkeys(SDSS_BANDS, value)


def _truth_table(galaxies, stars, sky, fluxes):
    n_galaxies, n_stars = len(galaxies["x"]), len(stars["x"])
    n = n_galaxies + n_stars
    nan = np.full(n_stars, np.nan)
    truth = QTable()
    truth["id"] = np.arange(1, n + 1)
    truth["kind"] = ["galaxy"] * n_galaxies + ["star"] * n_stars
    truth["ra"] = sky.ra.to(u.deg)
    truth["dec"] = sky.dec.to(u.deg)
    truth["x"] = np.r_[galaxies["x"], stars["x"]]
    truth["y"] = np.r_[galaxies["y"], stars["y"]]
    for band, flux in fluxes.items():
        truth[f"flux_{band}"] = flux * u.nanomaggy
    for band, flux in fluxes.items():
        truth[f"mag_{band}"] = nanomaggies_to_mag(flux)
    truth["bulge_to_total"] = np.r_[galaxies["bulge_to_total"], nan]
    truth["r_eff_disk"] = np.r_[galaxies["r_eff_disk"], nan] * u.arcsec
    truth["r_eff_bulge"] = np.r_[galaxies["r_eff_bulge"], nan] * u.arcsec
    truth["axis_ratio"] = np.r_[galaxies["axis_ratio"], nan]
    truth["theta"] = np.r_[galaxies["theta"], nan] * u.rad
    return truth


def _render_galaxy(image, galaxies, k, x, y, band, scale):
    """Add galaxy ``k`` (bulge plus disk) to ``image``; returns the flux drawn."""
    flux_r = 10 ** (-0.4 * (galaxies["mag_r"][k] - 22.5))
    bt = galaxies["bulge_to_total"][k]
    drawn = 0.0
    for fraction, colour, r_eff, n, q in (
            (bt, _BULGE_COLOUR[band], galaxies["r_eff_bulge"][k], 4.0,
             min(1.0, galaxies["axis_ratio"][k] + 0.4)),
            (1 - bt, _DISK_COLOUR[band], galaxies["r_eff_disk"][k], 1.0,
             galaxies["axis_ratio"][k])):
        stamp, origin = _sersic_stamp(x, y, max(r_eff / scale, 0.3), n, q, galaxies["theta"][k])
        drawn += _add_stamp(image, stamp, origin, fraction * flux_r * 10 ** (-0.4 * colour))
    return drawn


def _observe(rng, image, band, camcol, shape):
    """Add sky and noise in counts as SDSS would, return the frame's HDU contents."""
    gain = DEFAULT_GAIN[camcol][band_index(band)]
    dark_variance = DEFAULT_DARK_VARIANCE[camcol][band_index(band)]
    columns = np.arange(shape[1])
    # A slow flat-field ripple along the columns, as in real calibration vectors.
    calibvec = _TYPICAL_NMGY[band] * (1 + 0.02 * np.sin(2 * np.pi * columns / shape[1]))
    allsky, xinterp, yinterp = _binned_sky(rng, _TYPICAL_SKY[band], shape)
    sky = sky_counts({"ALLSKY": allsky[None], "XINTERP": xinterp[None],
                      "YINTERP": yinterp[None]}, shape)
    counts = np.clip(image / calibvec + sky, 0, None)
    noisy = rng.poisson(counts * gain) / gain + rng.normal(0, np.sqrt(dark_variance), shape)
    return (noisy - sky) * calibvec, calibvec, allsky, xinterp, yinterp


def simulate_galaxy_stamps(n, psf, size=64, mag_range=(16.0, 20.0), sky_noise=0.031,
                           nmgy_per_count=_TYPICAL_NMGY["r"], gain=4.7, seed=0):
    """Galaxies without a point source: compact bulge + disk (+ bar in half of them).

    A test of point-source detection on hosts whose centre looks most like
    a point source: the bulge (Sérsic n = 4) has an effective radius of 0.3
    to 0.8 arcsec, under the SDSS r-band PSF's FWHM, and holds 20 to 60% of
    the light; the disk (n = 1) 1.5 to 4 arcsec, axis ratio 0.4 to 1;
    every other galaxy has a bar (n = 0.5, 1 to 2 arcsec, axis ratio 0.2 to
    0.35, 10 to 20% of the light).  The image is convolved with ``psf``
    and observed with sky and photon noise, in nanomaggies.

    Parameters
    ----------
    n : int
        Number of stamps.
    psf : `~galaxyml.psf.PSFModel`
        The PSF of the observation (pass the same to the decomposition).
    size : int
        Stamp side in pixels (SDSS's 0.396 arcsec).
    mag_range : tuple of float
        Range of the total AB magnitude, drawn uniformly.
    sky_noise : float
        The sky's noise per pixel in nanomaggies (the real field's r band
        by default).
    nmgy_per_count, gain : float
        Calibration and gain, for the photon noise of the galaxy.
    seed : int

    Returns
    -------
    stamps : list of `~astropy.nddata.CCDData`
        In nanomaggies, with the error plane as uncertainty, the galaxy at
        the centre.
    truth : `~astropy.table.QTable`
        Per stamp: ``flux`` (nanomaggies), ``bulge_fraction``,
        ``bar_fraction``, ``r_eff_bulge``, ``r_eff_disk`` (arcsec).
    """
    from astropy.nddata import CCDData, StdDevUncertainty
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    kernel = psf.render()
    pixel = SDSS_PIXEL_SCALE.to_value(u.arcsec / u.pix)
    stamps, rows = [], []
    for _ in range(int(n)):
        centre = (size - 1) / 2 + rng.uniform(-0.5, 0.5, 2)
        flux = 10 ** ((22.5 - rng.uniform(*mag_range)) / 2.5)
        bulge, bar = rng.uniform(0.2, 0.6), (rng.uniform(0.1, 0.2) if rng.uniform() < 0.5
                                             else 0.0)
        r_bulge, r_disk = rng.uniform(0.3, 0.8), rng.uniform(1.5, 4.0)
        theta = rng.uniform(0, np.pi)
        parts = [(bulge, r_bulge, 4.0, rng.uniform(0.8, 1.0), theta, 9),
                 (1 - bulge - bar, r_disk, 1.0, rng.uniform(0.4, 1.0), theta, 3)]
        if bar:
            parts.append((bar, rng.uniform(1.0, 2.0), 0.5, rng.uniform(0.2, 0.35),
                          theta + rng.uniform(-1, 1), 3))
        image = np.zeros((size, size))
        for fraction, r_eff, index, axis_ratio, angle, oversample in parts:
            stamp, origin = _sersic_stamp(centre[0], centre[1], r_eff / pixel, index,
                                          axis_ratio, angle, oversample)
            _add_stamp(image, stamp, origin, fraction * flux)
        image = fftconvolve(image, kernel, mode="same")
        photons = np.clip(image, 0, None) / nmgy_per_count / gain * nmgy_per_count ** 2
        error = np.sqrt(sky_noise ** 2 + photons)
        data = image + rng.normal(size=image.shape) * error
        stamps.append(CCDData(data, unit=u.nanomaggy, uncertainty=StdDevUncertainty(error),
                              meta={"band": "r"}))
        rows.append((image.sum(), bulge, bar, r_bulge, r_disk))
    truth = QTable(rows=rows, names=("flux", "bulge_fraction", "bar_fraction", "r_eff_bulge",
                                     "r_eff_disk"))
    truth["flux"].unit = u.nanomaggy
    truth["r_eff_bulge"].unit = truth["r_eff_disk"].unit = u.arcsec
    return stamps, truth
