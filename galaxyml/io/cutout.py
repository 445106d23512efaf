# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Multi-band cutouts aligned on one pixel grid through the WCS."""

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, Cutout2D, NoOverlapError, PartialOverlapError, \
    StdDevUncertainty
from reproject import reproject_interp

from ..exceptions import (CutoutOffImageError, CutoutPartiallyOffImageWarning,
                          InvalidCutoutSizeError, InvalidInputTypeError, InvalidParameterError,
                          InvalidShapeError, MissingWCSError, MixedFieldsError, NoImageHDUError,
                          ShapeMismatchError, UnknownBandError)
from ..utils._fits import celestial_wcs, parse_unit, unit_to_bunit
from ._open import open_fits
from .fits import read_image, wcs_pixel_scale
from .sdss import read_sdss_frame
from .writing import provenance_header, write_fits

__all__ = ["MultiBandCutout", "multiband_cutout", "read_images"]

# Per-band metadata kept in a cutout and in its FITS file: meta key -> FITS keyword.
_BAND_META_KEYWORDS = {
    "run": "RUN", "camcol": "CAMCOL", "field": "FIELD", "rerun": "RERUN",
    "exptime": "EXPTIME", "nmgy_per_count": "NMGY", "gain": "GAIN",
    "dark_variance": "DARKVAR", "noise_model": "NOISEMOD", "filename": "SRCFILE",
    "psfield": "PSFIELD",
}
_FIELD_KEYS = ("run", "camcol", "field")
_MODES = ("partial", "strict")


class MultiBandCutout:
    """Images of one patch of sky in several bands on one pixel grid.

    Usually made by `multiband_cutout` or read from a file with
    `MultiBandCutout.read`.

    Parameters
    ----------
    data : array-like, shape (n_bands, ny, nx)
        The images, in ``unit``.
    bands : sequence of str
        Band names, in the order of the first axis of ``data``.
    wcs : `~astropy.wcs.WCS`
        Celestial WCS of the common pixel grid.
    unit : `~astropy.units.Unit` or str
        Unit of ``data`` and ``uncertainty``.
    uncertainty : array-like, optional
        One-sigma uncertainty, same shape as ``data``.
    mask : array-like of bool, optional
        True for bad pixels, same shape as ``data``.
    meta : dict, optional
        ``reference_band``, ``position`` (`~astropy.coordinates.SkyCoord`
        of the centre), ``origin`` (pixel (x, y) of the cutout's first pixel
        in the reference image) and ``bands`` (a dict of per-band metadata:
        run, camcol, field, rerun, exptime, nmgy_per_count, gain,
        dark_variance, noise_model, filename).
    """

    def __init__(self, data, bands, wcs, unit, uncertainty=None, mask=None, meta=None):
        data = np.asarray(data)
        bands = tuple(bands)
        if data.ndim != 3 or data.shape[0] != len(bands):
            raise InvalidShapeError(f"data must have shape (n_bands={len(bands)}, ny, nx), "
                                    f"not {data.shape}")
        if len(set(bands)) != len(bands):
            raise InvalidParameterError(f"band names must be unique, not {bands}")
        for name, plane in (("uncertainty", uncertainty), ("mask", mask)):
            if plane is not None and np.shape(plane) != data.shape:
                raise ShapeMismatchError(f"{name} has shape {np.shape(plane)}, data {data.shape}")
        self.data = data
        self.bands = bands
        self.wcs = wcs
        self.unit = u.Unit(unit)
        self.uncertainty = None if uncertainty is None else np.asarray(uncertainty)
        self.mask = (np.zeros(data.shape, dtype=bool) if mask is None
                     else np.asarray(mask, dtype=bool))
        self.meta = {} if meta is None else dict(meta)
        self.meta.setdefault("bands", {band: {} for band in bands})

    @property
    def shape(self):
        """(ny, nx) of every band."""
        return self.data.shape[1:]

    def __len__(self):
        return len(self.bands)

    def __repr__(self):
        single_letters = all(len(band) == 1 for band in self.bands)
        bands = "".join(self.bands) if single_letters else self.bands
        return (f"<MultiBandCutout bands={bands} shape={self.shape} unit={self.unit} "
                f"masked={int(self.mask.sum())}>")

    def __getitem__(self, band):
        """The image of one band as a `~astropy.nddata.CCDData`.

        Its ``meta`` holds the band's metadata and, where known, the cutout's
        origin on the reference frame (``xorigin``, ``yorigin``), so that a
        PSF can be evaluated at the right place of the frame.
        """
        if band not in self.bands:
            raise UnknownBandError(f"band {band!r} is not in this cutout (bands: {self.bands})")
        index = self.bands.index(band)
        uncertainty = (None if self.uncertainty is None
                       else StdDevUncertainty(self.uncertainty[index]))
        meta = dict(self.meta["bands"].get(band, {}), band=band)
        if "origin" in self.meta:  # where the cutout lies on the frame (FITS-safe keys)
            meta["xorigin"], meta["yorigin"] = (int(v) for v in self.meta["origin"])
        return CCDData(self.data[index], unit=self.unit, wcs=self.wcs.deepcopy(),
                       uncertainty=uncertainty, mask=self.mask[index], meta=meta)

    def select(self, bands):
        """A cutout holding only ``bands``, in that order (the arrays are copied)."""
        bands = tuple(bands)
        missing = [band for band in bands if band not in self.bands]
        if missing or not bands:
            raise UnknownBandError(f"bands {missing or bands} are not in this cutout (bands: "
                                   f"{self.bands})")
        rows = [self.bands.index(band) for band in bands]
        meta = dict(self.meta, bands={band: self.meta["bands"].get(band, {}) for band in bands})
        return MultiBandCutout(self.data[rows], bands, self.wcs.deepcopy(), self.unit,
                               uncertainty=None if self.uncertainty is None
                               else self.uncertainty[rows], mask=self.mask[rows], meta=meta)

    def to_ccddata(self):
        """A dict of band -> `~astropy.nddata.CCDData`, sharing this cutout's grid."""
        return {band: self[band] for band in self.bands}

    @property
    def inputs(self):
        """Files the bands were cut from, where known."""
        return [meta["filename"] for meta in self.meta["bands"].values() if meta.get("filename")]

    def to_hdulist(self):
        """The cutout as an `~astropy.io.fits.HDUList` (see `write`)."""
        primary = fits.PrimaryHDU(header=provenance_header("multiband_cutout", self.inputs))
        header = primary.header
        header["BANDS"] = (",".join(self.bands), "bands, in the order of the extensions")
        if "reference_band" in self.meta:
            header["REFBAND"] = (self.meta["reference_band"], "band whose pixel grid is used")
        if "position" in self.meta:
            position = self.meta["position"].icrs
            header["CUTRA"] = (position.ra.deg, "[deg] ICRS RA of the cutout centre")
            header["CUTDEC"] = (position.dec.deg, "[deg] ICRS Dec of the cutout centre")
        if "origin" in self.meta:
            header["XORIGIN"] = (int(self.meta["origin"][0]), "x of pixel 0 in reference image")
            header["YORIGIN"] = (int(self.meta["origin"][1]), "y of pixel 0 in reference image")
        hdus = [primary]
        wcs_header = self.wcs.to_header(relax=True)
        for index, band in enumerate(self.bands):
            band_header = wcs_header.copy()
            band_header["BAND"] = (band, "band of this extension")
            band_header["BUNIT"] = unit_to_bunit(self.unit)
            for key, keyword in _BAND_META_KEYWORDS.items():
                value = self.meta["bands"].get(band, {}).get(key)
                if isinstance(value, u.Quantity):
                    value = value.to_value(u.s)
                if value is not None:
                    band_header[keyword] = value
            planes = [("DATA", self.data[index])]
            if self.uncertainty is not None:
                planes.append(("ERR", self.uncertainty[index]))
            planes.append(("MASK", self.mask[index].astype(np.uint8)))
            for plane, array in planes:
                plane_header = band_header.copy()
                plane_header["GMLPLANE"] = (plane, "DATA, ERR (one sigma) or MASK (1 = bad)")
                if plane == "MASK":
                    del plane_header["BUNIT"]
                name = band if plane == "DATA" else f"{band}_{plane}"
                hdus.append(fits.ImageHDU(array, header=plane_header, name=name))
        return fits.HDUList(hdus)

    def write(self, path, overwrite=False):
        """Write the cutout to one multi-extension FITS file, atomically.

        Each band has a data extension named after it, ``<band>_ERR`` with
        the uncertainty and ``<band>_MASK`` (uint8, 1 for bad pixels), each
        with the celestial WCS.  The primary header carries the provenance.
        `MultiBandCutout.read` gets back the same arrays, WCS and metadata.
        """
        return write_fits(self.to_hdulist(), path, inputs=self.inputs, overwrite=overwrite)

    @classmethod
    def read(cls, path):
        """Read a cutout written by `MultiBandCutout.write`."""
        path = Path(path)
        with open_fits(path) as hdul:
            primary = hdul[0].header
            if "BANDS" not in primary:
                raise NoImageHDUError(f"{path}: not a galaxyml multi-band cutout "
                                      "(no BANDS keyword)")
            bands = tuple(primary["BANDS"].split(","))
            planes = {(hdu.header.get("BAND"), hdu.header.get("GMLPLANE")): hdu
                      for hdu in hdul[1:]}
            try:
                data_hdus = [planes[band, "DATA"] for band in bands]
                masks = np.stack([planes[band, "MASK"].data != 0 for band in bands])
            except KeyError as exc:
                raise NoImageHDUError(f"{path}: extension {exc} is missing") from exc
            data = np.stack([hdu.data for hdu in data_hdus])
            uncertainty = (np.stack([planes[band, "ERR"].data for band in bands])
                           if all((band, "ERR") in planes for band in bands) else None)
            headers = [hdu.header for hdu in data_hdus]
        meta = {"bands": {band: _band_meta_from_header(header)
                          for band, header in zip(bands, headers)}}
        if "REFBAND" in primary:
            meta["reference_band"] = primary["REFBAND"]
        if "CUTRA" in primary:
            meta["position"] = SkyCoord(primary["CUTRA"], primary["CUTDEC"], unit="deg")
        if "XORIGIN" in primary:
            meta["origin"] = (primary["XORIGIN"], primary["YORIGIN"])
        unit = parse_unit(headers[0].get("BUNIT"), path) or u.dimensionless_unscaled
        return cls(data, bands, celestial_wcs(headers[0], path), unit,
                   uncertainty=uncertainty, mask=masks, meta=meta)


def _band_meta_from_header(header):
    meta = {key: header[keyword] for key, keyword in _BAND_META_KEYWORDS.items()
            if keyword in header}
    if "exptime" in meta:
        meta["exptime"] = meta["exptime"] * u.s
    return meta


def _band_meta(image):
    """Per-band metadata of an image, from galaxyml's SDSS keys or FITS keywords."""
    meta = image.meta or {}
    header = meta.get("header", meta)
    result = {}
    for key, keyword in _BAND_META_KEYWORDS.items():
        value = meta.get(key, header.get(keyword) if hasattr(header, "get") else None)
        if key == "filename" and value is None:
            value = meta.get("FILENAME")
        if key == "exptime" and value is not None and not isinstance(value, u.Quantity):
            value = float(value) * u.s  # SDSS headers write EXPTIME as a string
        if value is not None:
            result[key] = value
    return result


def read_images(images):
    """Read a mapping of band -> path or CCDData into band -> CCDData.

    Files named ``frame-*`` are read with `~galaxyml.io.read_sdss_frame`,
    others with `~galaxyml.io.read_image`.  CCDData are passed through
    unchanged, so a frame read once can serve any number of cutouts.
    """
    if not isinstance(images, Mapping) or not images:
        raise InvalidInputTypeError("images must be a non-empty mapping of band name -> CCDData "
                                    "or path")
    result = {}
    for band, image in images.items():
        if isinstance(image, (str, Path)):
            reader = read_sdss_frame if Path(image).name.startswith("frame-") else read_image
            image = reader(image)
        if not isinstance(image, CCDData):
            raise InvalidInputTypeError(f"band {band!r}: expected a CCDData or a path, "
                                        f"not {type(image).__name__}")
        if image.data.ndim != 2:
            raise InvalidShapeError(f"band {band!r}: image must be two-dimensional, "
                                    f"not of shape {image.data.shape}")
        if image.wcs is None or not image.wcs.has_celestial:
            raise MissingWCSError(f"band {band!r} ({_band_meta(image).get('filename', 'image')})"
                                  ": no celestial WCS, so it cannot be aligned")
        result[band] = image
    return result


def _check_same_field(images):
    """Refuse bands of different SDSS fields (where the images say which field)."""
    ids = {}
    for band, image in images.items():
        meta = _band_meta(image)
        if all(meta.get(key) is not None for key in _FIELD_KEYS):
            ids[band] = tuple(int(meta[key]) for key in _FIELD_KEYS)
    if len(set(ids.values())) > 1:
        described = ", ".join(f"{band}: {'-'.join(map(str, field))}"
                              for band, field in ids.items())
        raise MixedFieldsError(f"bands come from different fields (run-camcol-field): "
                               f"{described}")


def _size_in_pixels(size, wcs):
    """(ny, nx) in whole pixels from pixels or an angular Quantity."""
    if isinstance(size, u.Quantity):
        values = np.atleast_1d(size)
        if values.unit.physical_type == "angle":
            values = (values / (wcs_pixel_scale(wcs) * u.pix)).decompose().value
        elif values.unit == u.pix:
            values = values.value
        else:
            raise InvalidCutoutSizeError(f"size must be in pixels or an angle, not {size}")
    else:
        values = np.atleast_1d(np.asarray(size, dtype=float))
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.shape != (2,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InvalidCutoutSizeError(f"cutout size must be one or two positive numbers, "
                                     f"not {size!r}")
    pixels = np.round(values).astype(int)
    if np.any(pixels < 1):
        raise InvalidCutoutSizeError(f"cutout size {size!r} is less than one pixel")
    return tuple(int(p) for p in pixels)


def _paste(array, cutout, fill, dtype):
    """The part of ``array`` under a Cutout2D's footprint, ``fill`` elsewhere."""
    out = np.full(cutout.shape, fill, dtype=dtype)
    out[cutout.slices_cutout] = array[cutout.slices_original]
    return out


def _reference_planes(image, cutout):
    data = _paste(image.data, cutout, np.nan, np.float32)
    variance = (None if image.uncertainty is None
                else _paste(image.uncertainty.represent_as(StdDevUncertainty).array,
                            cutout, np.nan, np.float32) ** 2)
    mask = _paste(image.mask if image.mask is not None else np.zeros(image.shape, bool),
                  cutout, True, bool)
    return data, variance, mask


def _resampled_planes(image, target_wcs, shape, order, band):
    """Resample one band onto the target grid: data, variance and mask together."""
    ny, nx = shape
    # Where the target grid lies in this band, with a margin for the interpolation kernel.
    edge_y, edge_x = np.meshgrid(np.linspace(-0.5, ny - 0.5, 5), np.linspace(-0.5, nx - 0.5, 5),
                                 indexing="ij")
    world = target_wcs.pixel_to_world_values(edge_x.ravel(), edge_y.ravel())
    x, y = image.wcs.world_to_pixel_values(*world)
    margin = 3
    x0, x1 = int(np.floor(x.min())) - margin, int(np.ceil(x.max())) + margin + 1
    y0, y1 = int(np.floor(y.min())) - margin, int(np.ceil(y.max())) + margin + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    if x0 >= x1 or y0 >= y1:
        raise CutoutOffImageError(f"band {band!r} ({_band_meta(image).get('filename', 'image')})"
                                  " does not overlap the cutout")
    window = (slice(y0, y1), slice(x0, x1))
    data = image.data[window].astype(np.float32)
    # Masked pixels keep their values (SDSS interpolates over bad columns and
    # cosmic rays, and that flux belongs in apertures); only non-finite ones
    # are replaced, since a NaN would spread over its interpolation kernel.
    non_finite = ~np.isfinite(data)
    bad = non_finite if image.mask is None else (non_finite | image.mask[window])
    stack = [np.where(non_finite, 0, data), bad.astype(np.float32)]
    if image.uncertainty is not None:
        sigma = image.uncertainty.represent_as(StdDevUncertainty).array[window]
        stack.append(np.where(non_finite, 0, sigma.astype(np.float32) ** 2))
    resampled, footprint = reproject_interp(
        (np.stack(stack), image.wcs[window]), target_wcs, shape_out=(len(stack), ny, nx),
        order=order, roundtrip_coords=False)
    off = footprint[0] == 0
    mask = off | (resampled[1] > 1e-6) | ~np.isfinite(resampled[0])
    data = np.where(off, np.nan, resampled[0]).astype(np.float32)
    variance = (np.where(off, np.nan, resampled[2]).astype(np.float32)
                if image.uncertainty is not None else None)
    return data, variance, mask


def multiband_cutout(images, position, size, reference_band="r", mode="partial",
                     order="bilinear"):
    """Cut the same patch of sky from several bands, on one pixel grid.

    Bands of one SDSS field are not pixel-aligned.  The reference band is
    cut exactly (no resampling); every other band is resampled onto the
    reference cutout's grid through the WCS with `reproject.reproject_interp`,
    together with its variance and mask.

    Parameters
    ----------
    images : mapping
        Band name -> `~astropy.nddata.CCDData` (with a celestial WCS) or
        path.  Pass images already read to cut many stamps from the same
        frames without reading them again.
    position : `~astropy.coordinates.SkyCoord` or tuple of float
        Centre of the cutout: a sky position, or a pixel position (x, y)
        in the reference band.
    size : int, tuple of int, or `~astropy.units.Quantity`
        (ny, nx) or one number for a square: in pixels of the reference
        band, or as an angle.
    reference_band : str
        Band whose pixel grid the cutout uses.
    mode : {'partial', 'strict'}
        ``'partial'`` accepts a cutout that extends beyond the image: the
        missing pixels are NaN and masked and a
        `~galaxyml.exceptions.CutoutPartiallyOffImageWarning` is issued.
        ``'strict'`` raises `~galaxyml.exceptions.CutoutOffImageError` instead.
    order : str
        Interpolation of the resampled bands, as for
        `reproject.reproject_interp` (``'bilinear'`` preserves fluxes in
        apertures; ``'bicubic'`` is sharper).

    Returns
    -------
    cutout : `MultiBandCutout`
        Bands in the order of ``images``.

    Notes
    -----
    The variance, not the standard deviation, is interpolated, so that the
    uncertainty of a sum over an aperture is that of the original pixels.
    Interpolation correlates neighbouring pixels of the resampled bands, so
    their pixel-to-pixel scatter is lower than their uncertainty.  A
    resampled pixel is masked where any original pixel that contributes to
    it is masked.
    """
    if mode not in _MODES:
        raise InvalidParameterError(f"mode must be one of {_MODES}, not {mode!r}")
    images = read_images(images)
    if reference_band not in images:
        raise UnknownBandError(f"reference band {reference_band!r} is not among the bands "
                               f"{tuple(images)}")
    _check_same_field(images)
    reference = images[reference_band]
    unit = reference.unit
    shape = _size_in_pixels(size, reference.wcs)
    pixel = (position if not isinstance(position, SkyCoord)
             else reference.wcs.world_to_pixel(position))
    if not np.all(np.isfinite(np.asarray(pixel, dtype=float))):
        # A sky position beyond the projection's valid hemisphere, or NaN.
        raise CutoutOffImageError(f"the cutout position {position} has no pixel position on "
                                  f"the {reference_band} image")
    try:
        cutout = Cutout2D(reference.data, pixel, shape, wcs=reference.wcs, mode=mode,
                          fill_value=np.nan, copy=False)
    except NoOverlapError as exc:
        raise CutoutOffImageError(f"the cutout at {position} of size {shape} lies entirely off "
                                  f"the {reference_band} image of shape {reference.shape}") from exc
    except PartialOverlapError as exc:
        raise CutoutOffImageError(f"the cutout at {position} of size {shape} extends beyond "
                                  f"the {reference_band} image (mode='strict')") from exc
    n_off = int(np.prod(shape) - np.prod(cutout.data[cutout.slices_cutout].shape))
    if n_off:
        warnings.warn(f"the cutout at {position} extends beyond the {reference_band} image: "
                      f"{n_off} of {np.prod(shape)} pixels are missing and masked",
                      CutoutPartiallyOffImageWarning)

    planes = []
    for band, image in images.items():
        if band == reference_band:
            data, variance, mask = _reference_planes(image, cutout)
        else:
            data, variance, mask = _resampled_planes(image, cutout.wcs, shape, order, band)
        if image.unit != unit:
            scale = image.unit.to(unit)  # raises UnitConversionError naming both units
            data = data * scale
            variance = None if variance is None else variance * scale ** 2
        planes.append((data, variance, mask))
    data = np.stack([plane[0] for plane in planes])
    variances = [plane[1] for plane in planes]
    uncertainty = (None if any(v is None for v in variances)
                   else np.sqrt(np.clip(np.stack(variances), 0, None)))
    mask = np.stack([plane[2] for plane in planes])
    sky_centre = cutout.wcs.pixel_to_world((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    meta = {"reference_band": reference_band, "position": sky_centre,
            "origin": tuple(int(v) for v in cutout.origin_original),
            "bands": {band: _band_meta(image) for band, image in images.items()}}
    return MultiBandCutout(data, tuple(images), cutout.wcs, unit, uncertainty=uncertainty,
                           mask=mask, meta=meta)
