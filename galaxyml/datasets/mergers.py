# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Simulated mergers made of real galaxies, against isolated real galaxies, with no shortcut.

Every image of both classes is the sum of two real windows of the same
field, weighted by ``a`` and ``b`` with a**2 + b**2 = 1, so that both
classes keep the field's noise level and texture (two noisy stamps simply
added would have sqrt(2) times the noise):

* a merger: ``a`` x the primary galaxy's window + ``b`` x a window of a
  second real galaxy (the companion, from the same side of the split)
  placed at a projected separation of 0.5 to 3 of the primary's effective
  radii, at a flux ratio of 1:1 to 1:4, sheared, with a faint tidal tail
  drawn from the companion's own light;
* an isolated galaxy: ``a`` x a galaxy's window + ``b`` x a window of
  random sky of the same side, sheared in the same way.

Both are centred on their light centroid; the isolated galaxies are chosen
and weighted so that their total fluxes follow the mergers'.  What is left
to tell the classes apart is the second galaxy and its distortion.
"""

import numpy as np
from astropy import units as u
from astropy.table import QTable
from scipy import ndimage

from ..exceptions import InvalidParameterError, TooFewSourcesError
from ..io.cutout import MultiBandCutout, multiband_cutout, read_images
from ..sources import source_catalog
from .samples import LabelledImages, seeded_manifest
from .selection import galaxy_catalog, split_by_region

__all__ = ["make_merger_samples", "merger_shortcut_features"]


def make_merger_samples(field_images, catalog=None, bands="gri", size=64, n_per_class=None,
                        separation=(0.5, 3.0), flux_ratio=(1.0, 4.0), shear=(0.0, 0.3),
                        tail_fraction=(0.05, 0.2), test_fraction=0.5, mag_range=(14.0, 20.0),
                        seed=0):
    """Simulated mergers and isolated galaxies from a field's real galaxies.

    Parameters
    ----------
    field_images : mapping
        Band -> `~astropy.nddata.CCDData` or path of one field.
    catalog : `~astropy.table.QTable`, optional
        Galaxies (`~galaxyml.datasets.galaxy_catalog`); selected in r
        within ``mag_range`` by default.
    bands : sequence of str
        Bands of the images (g, r, i for the colour classifier).
    size : int
        Side of the images in pixels.
    n_per_class : int, optional
        Samples of each class on each side; one per galaxy by default.
    separation : (float, float)
        Projected separation of the companion in effective radii of the
        primary (half its Gaussian FWHM).
    flux_ratio : (float, float)
        Primary to companion flux ratio (1:1 to 1:4).
    shear : (float, float)
        Range of the shear applied to the second window (both classes).
    tail_fraction : (float, float)
        Flux of the tidal tail as a fraction of the companion's.
    test_fraction : float
        Galaxies with RA above the (1 - test_fraction) quantile are the
        test side (`~galaxyml.datasets.split_by_region`).
    mag_range : (float, float)
        r magnitudes of the galaxies used, when ``catalog`` is None.
    seed : int

    Returns
    -------
    samples : `~galaxyml.datasets.LabelledImages`
        Label ``is_merger``; the manifest records every parameter of each
        image (``galaxy_id``, ``companion_id``, weights ``a`` and ``b``,
        separation, angle, shear, tail, window centres), so each image is
        remade identically on demand.
    """
    bands = tuple(bands)
    for name, (low, high) in (("separation", separation), ("flux_ratio", flux_ratio),
                              ("shear", shear), ("tail_fraction", tail_fraction)):
        if not 0 <= low <= high:
            raise InvalidParameterError(f"{name} must be a range (low, high), not {(low, high)}")
    images = read_images(field_images)
    reference = images["r"] if "r" in images else images[bands[0]]
    if catalog is None:
        catalog = galaxy_catalog(images, size=size, mag_range=mag_range)
    split, _ = split_by_region(catalog, test_fraction)
    rng = np.random.default_rng(seed)
    rows = []
    for side in ("train", "test"):
        members = catalog[split == side]
        if len(members) < 3:
            raise TooFewSourcesError(f"{len(members)} galaxies on the {side} side; mergers "
                                     "need at least 3")
        n = len(members) if n_per_class is None else int(n_per_class)
        mergers = [_merger_row(rng, members, reference.shape, size, separation, flux_ratio,
                               shear, tail_fraction) for _ in range(n)]
        rows += [dict(row, split=side) for row in mergers]
        rows += [dict(_isolated_row(rng, members, reference.shape, size, shear, row["total"],
                                    row["a"]), split=side) for row in mergers]
    names = list(rows[0])
    manifest = seeded_manifest([tuple(row[name] for name in names) for row in rows], names,
                               seed)
    manifest["is_merger"] = manifest["is_merger"].astype(float)
    manifest.meta.update(kind="mergers", bands=list(bands), labels=["is_merger"],
                         size=int(size), stretch=_default_stretch().to_dict())
    subset = {band: images[band] for band in bands}
    if "r" not in subset:
        subset["r"] = images["r"]

    def make(row):
        return (_render(subset, bands, row, size),)

    return LabelledImages(manifest, make)


def _default_stretch():
    from ..stretch import GalaxyGANStretch

    return GalaxyGANStretch()


def _inside(x, y, shape, size):
    half = size / 2 + 2
    return half <= x <= shape[1] - half and half <= y <= shape[0] - half


def _merger_row(rng, members, shape, size, separation, flux_ratio, shear, tail_fraction):
    for _ in range(1000):
        primary, companion = members[rng.choice(len(members), 2, replace=False)]
        ratio = rng.uniform(*flux_ratio)
        # Weights: the companion shows 1/ratio of the primary's flux, a**2 + b**2 = 1.
        b_over_a = float(primary["flux"] / companion["flux"]) / ratio
        a = 1 / np.sqrt(1 + b_over_a ** 2)
        b = a * b_over_a
        if a < 0.5 or b < 0.3:  # a companion far brighter or fainter than wanted
            continue
        r_eff = float(primary["fwhm"].to_value(u.pix)) / 2
        distance = rng.uniform(*separation) * r_eff
        angle = rng.uniform(0, 2 * np.pi)
        dx, dy = distance * np.cos(angle), distance * np.sin(angle)
        fp, fc = a * float(primary["flux"].value), b * float(companion["flux"].value)
        # Centre of light of the pair, relative to the primary.
        cx, cy = fc * dx / (fp + fc), fc * dy / (fp + fc)
        x1, y1 = float(primary["x"]) + cx, float(primary["y"]) + cy
        # The companion's window is placed so that it lands at (dx, dy) from the primary.
        x2, y2 = float(companion["x"]) - (dx - cx), float(companion["y"]) - (dy - cy)
        if _inside(x1, y1, shape, size) and _inside(x2, y2, shape, size):
            return {"is_merger": True, "galaxy_id": int(primary["id"]),
                    "companion_id": int(companion["id"]), "a": a, "b": b,
                    "flux_ratio": ratio, "separation": distance / r_eff, "angle": angle,
                    "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                    "companion_x": float(companion["x"]), "companion_y": float(companion["y"]),
                    "shear": rng.uniform(*shear), "shear_angle": rng.uniform(0, np.pi),
                    "tail_fraction": rng.uniform(*tail_fraction),
                    "tail_angle": angle + rng.uniform(-0.5, 0.5),
                    "total": fp + fc}
    raise TooFewSourcesError("no pair of galaxies fits the flux ratio and stamp limits")


def _isolated_row(rng, members, shape, size, shear, total, a):
    """An isolated galaxy and a window of random sky, with a merger's weights ``a`` and
    sqrt(1 - a**2) (the interpolation of the shear smooths the second window's noise, so
    the weights must follow the same distribution in both classes) and its total flux."""
    fluxes = np.asarray(members["flux"].value, float)
    wanted = total / a
    candidates = np.flatnonzero((fluxes >= wanted / 1.25) & (fluxes <= wanted * 1.25))
    if candidates.size == 0:
        candidates = np.array([np.argmin(np.abs(np.log(fluxes / wanted)))])
    for _ in range(1000):
        primary = members[rng.choice(candidates)]
        # Random sky: a window beside another galaxy of the same side, which stays just
        # outside it, so that the window holds that neighbourhood's faint sources (as the
        # companion's window does) but no second galaxy at its centre.
        anchor = members[rng.integers(len(members))]
        direction = rng.uniform(0, 2 * np.pi)
        distance = size / 2 + float(anchor["fwhm"].to_value(u.pix)) * 2
        x2 = float(anchor["x"]) + distance * np.cos(direction)
        y2 = float(anchor["y"]) + distance * np.sin(direction)
        x1, y1 = float(primary["x"]), float(primary["y"])
        if _inside(x1, y1, shape, size) and _inside(x2, y2, shape, size):
            return {"is_merger": False, "galaxy_id": int(primary["id"]), "companion_id": -1,
                    "a": a, "b": float(np.sqrt(1 - a ** 2)), "flux_ratio": np.nan,
                    "separation": np.nan, "angle": np.nan, "x1": x1, "y1": y1, "x2": x2,
                    "y2": y2, "companion_x": np.nan, "companion_y": np.nan,
                    "shear": rng.uniform(*shear),
                    "shear_angle": rng.uniform(0, np.pi), "tail_fraction": 0.0,
                    "tail_angle": np.nan, "total": a * float(primary["flux"].value)}
    raise TooFewSourcesError("no window of random sky fits inside the field")


def _render(images, bands, row, size):
    """The image of one manifest row: a W1 + b T(W2) (+ b tail), as a MultiBandCutout."""
    first = multiband_cutout(images, (row["x1"], row["y1"]), size, mode="strict")
    second = multiband_cutout(images, (row["x2"], row["y2"]), size, mode="strict")
    index1 = [first.bands.index(band) for band in bands]
    index2 = [second.bands.index(band) for band in bands]
    a, b = float(row["a"]), float(row["b"])
    centre = _companion_position(row, second, size)
    sheared = np.stack([_shear(second.data[k], row["shear"], row["shear_angle"], centre)
                        for k in index2])
    data = a * first.data[index1] + b * sheared
    if row["is_merger"]:
        data = data + b * _tail(second, index2, row, centre)
    error1 = first.uncertainty[index1] if first.uncertainty is not None else 0
    error2 = second.uncertainty[index2] if second.uncertainty is not None else 0
    uncertainty = np.sqrt((a * error1) ** 2 + (b * error2) ** 2)
    mask = first.mask[index1] | second.mask[index2]
    meta = {"is_merger": bool(row["is_merger"]), "galaxy_id": int(row["galaxy_id"])}
    return MultiBandCutout(data.astype(np.float32), bands, first.wcs, first.unit,
                           uncertainty=np.asarray(uncertainty, np.float32), mask=mask,
                           meta=meta)


def _companion_position(row, second, size):
    """(x, y) in the second window of the centre of the distortion: the companion's centre,
    or the window's middle for random sky."""
    if not row["is_merger"]:
        return (size - 1) / 2, (size - 1) / 2
    x0, y0 = second.meta["origin"]
    return float(row["companion_x"]) - x0, float(row["companion_y"]) - y0


def _shear(plane, amount, angle, centre):
    """``plane`` sheared by ``amount`` along ``angle`` about ``centre`` (x, y), bilinear."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    matrix = rotation @ np.array([[1.0, 0.0], [amount, 1.0]]) @ rotation.T  # (y, x) axes
    centre_yx = np.array([centre[1], centre[0]])
    offset = centre_yx - matrix @ centre_yx
    return ndimage.affine_transform(plane, matrix, offset=offset, order=1, mode="reflect")


def _tail(second, index, row, centre):
    """A faint tail of the companion's own light, drawn out away from it, noise-free."""
    r = second.bands.index("r")
    _, segments = source_catalog(second[second.bands[r]], segment_map=True, columns=("x", "y"))
    x, y = int(round(centre[0])), int(round(centre[1]))
    label = 0 if segments is None else int(segments[y, x])
    tail = np.zeros((len(index),) + second.data.shape[1:])
    if label == 0:
        return tail
    inside = segments == label
    direction = np.array([np.sin(row["tail_angle"]), np.cos(row["tail_angle"])])  # (y, x)
    for j, k in enumerate(index):
        light = ndimage.gaussian_filter(np.where(inside, second.data[k], 0.0), 1.5)
        total = light.sum()
        if total <= 0:
            continue
        steps = np.arange(2, 16)
        smear = sum(np.exp(-step / 6) * ndimage.shift(light, direction * step * 1.5, order=1)
                    for step in steps)
        tail[j] = smear * (row["tail_fraction"] * total / max(smear.sum(), 1e-12))
    return tail


def merger_shortcut_features(samples, band="r"):
    """Image statistics that must not tell the classes apart: a check for shortcuts.

    Per sample: total flux, the noise (robust scatter of the border
    pixels), the light centroid's offset from the centre, the peak, and
    the 5th, 50th and 95th percentiles of the pixels.

    Returns
    -------
    features : `~astropy.table.QTable`
    """
    from astropy.stats import mad_std

    k = list(samples.bands).index(band)
    rows = []
    for index in range(len(samples)):
        image = samples.linear_sample(index)[0].data[k]
        border = np.concatenate([image[:4].ravel(), image[-4:].ravel(), image[:, :4].ravel(),
                                 image[:, -4:].ravel()])
        yy, xx = np.indices(image.shape)
        positive = np.clip(image, 0, None)
        weight = positive.sum()
        middle = (image.shape[0] - 1) / 2
        offset = np.hypot((xx * positive).sum() / weight - middle,
                          (yy * positive).sum() / weight - middle)
        p5, p50, p95 = np.percentile(image, [5, 50, 95])
        rows.append({"total_flux": float(image.sum()), "noise": float(mad_std(border)),
                     "centroid_offset": float(offset), "peak": float(image.max()),
                     "p5": p5, "p50": p50, "p95": p95})
    return QTable(rows=rows)
