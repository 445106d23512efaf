# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Non-parametric morphology (CAS, Gini-M20) through statmorph: the classical merger tests.

The measurements are statmorph's (Rodriguez-Gomez et al. 2019), on the
source detected nearest the image centre, with the other sources' segments
masked; the merger criteria are the standard ones: asymmetry above 0.35
(Conselice 2003) and the Gini-M20 merger line of Lotz et al. (2008),
statmorph's ``gini_m20_merger`` > 0.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable

from ..utils._optional import optional_import
from ..sources import source_catalog
from .decomposition import prepare_image

__all__ = ["ASYMMETRY_MERGER_THRESHOLD", "MORPHOLOGY_FLAGS",
           "nonparametric_morphology", "cas", "gini_m20"]

#: Asymmetry above which a galaxy counts as a merger (Conselice 2003).
ASYMMETRY_MERGER_THRESHOLD = 0.35

#: Bits of the ``flags`` column.
MORPHOLOGY_FLAGS = {
    1: "no source was detected near the image centre: the measurements are NaN",
    2: "statmorph flagged the measurement as suspect (its flag 1)",
    4: "statmorph flagged the measurement as bad (its flag 2; often a galaxy that fills "
       "the stamp): the values are kept but unreliable",
    8: "NaN or masked pixels near the centre were in-painted",
    16: "statmorph could not measure the galaxy (its flag 4): the values are NaN",
}
_FLAG_NO_SOURCE, _FLAG_SUSPECT, _FLAG_BAD, _FLAG_INPAINTED, _FLAG_FAILED = 1, 2, 4, 8, 16

_CAS = ("concentration", "asymmetry", "smoothness")
_GINI_M20 = ("gini", "m20", "gini_m20_merger")


def _statmorph():
    return optional_import("statmorph", "CAS and Gini-M20", "mergers")


def nonparametric_morphology(images, band=None, position=None, psf=None):
    """CAS and Gini-M20 of the galaxy at the centre of each image, with statmorph.

    Parameters
    ----------
    images : `~astropy.nddata.CCDData`, `~galaxyml.io.MultiBandCutout`, array, or list
        Sky-subtracted, in nanomaggies: a CCDData, a cutout (``band``
        chooses among several bands), a 2-D array, or a batch (3-D array
        or list).  The uncertainty plane (or the image's robust scatter)
        is statmorph's weight map; NaN and masked pixels are in-painted
        (and flagged).  The galaxy's segment is not deblended, so that an
        overlapping companion belongs to it; separate sources are masked.
        statmorph needs the galaxy to fit well inside the image (about
        five Petrosian radii on a side): a galaxy that fills its stamp is
        flagged (bit 4).
    band : str, optional
        The band to measure in a multi-band cutout.
    position : tuple of float or `~astropy.coordinates.SkyCoord`, optional
        Where the galaxy is; by default the source nearest the centre.
    psf : 2-D array, optional
        The PSF, for statmorph's Sérsic fit (not used by CAS or Gini-M20).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per image: ``x``, ``y`` (the galaxy's centroid),
        ``concentration``, ``asymmetry``, ``smoothness``, ``gini``,
        ``m20``, ``gini_m20_merger`` (statmorph's names),
        ``asymmetry_merger`` (asymmetry > 0.35), ``lotz_merger``
        (``gini_m20_merger`` > 0), ``sn_per_pixel``, ``statmorph_flag``
        and ``flags`` (bits of `MORPHOLOGY_FLAGS`).

    Raises
    ------
    MissingDependencyError
        statmorph is not installed.
    """
    statmorph = _statmorph()
    if isinstance(images, np.ndarray) and images.ndim == 3:
        items = list(images)
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    rows = [_measure(statmorph, prepare_image(item, position, band), psf) for item in items]
    table = QTable(rows=rows)
    table["x"].unit = table["y"].unit = u.pix
    table["asymmetry_merger"] = table["asymmetry"] > ASYMMETRY_MERGER_THRESHOLD
    table["lotz_merger"] = table["gini_m20_merger"] > 0
    table.meta["flags"] = dict(MORPHOLOGY_FLAGS)
    return table


def _measure(statmorph, item, psf):
    """statmorph's measurements of the source at (item.x, item.y), others masked."""
    row = {"x": item.x, "y": item.y}
    row.update({name: np.nan for name in _CAS + _GINI_M20 + ("sn_per_pixel",)})
    row["statmorph_flag"] = -1
    row["flags"] = _FLAG_INPAINTED if item.flags & 4 else 0
    image = CCDData(item.data, unit=u.nanomaggy, mask=item.mask,
                    uncertainty=StdDevUncertainty(item.error))
    # Not deblended: a companion that overlaps the galaxy (a merger) is part of its
    # segment, as in Lotz et al. (2004); deblending also cut bright galaxies of the
    # real field into fragments of 10 to 25 pixels and left statmorph a fragment.
    catalog, segments = source_catalog(image, noise=item.sky_noise, segment_map=True,
                                       deblend=False, columns=("id", "x", "y"))
    if len(catalog) == 0:
        row["flags"] |= _FLAG_NO_SOURCE
        return row
    # The segment under the position, else the nearest source (masked pixels are in none).
    label = int(segments[int(round(item.y)), int(round(item.x))])
    if label == 0:
        nearest = np.argmin(np.hypot(catalog["x"] - item.x, catalog["y"] - item.y))
        label = int(catalog["id"][nearest])
    others = (segments > 0) & (segments != label)
    with warnings.catch_warnings():
        # statmorph reports problems through its flag, which the table carries.
        warnings.simplefilter("ignore")
        morph = statmorph.SourceMorphology(
            item.data, (segments == label).astype(int), 1, weightmap=item.error,
            mask=others, psf=psf)  # NaN and masked pixels in-painted (flag 8), not masked
    row["statmorph_flag"] = int(morph.flag)
    if morph.flag >= 4:
        row["flags"] |= _FLAG_FAILED
        return row
    if morph.flag >= 2:
        row["flags"] |= _FLAG_BAD
    elif morph.flag == 1:
        row["flags"] |= _FLAG_SUSPECT
    for name in _CAS + _GINI_M20 + ("sn_per_pixel",):
        row[name] = float(getattr(morph, name))
    return row


def cas(images, band=None, position=None):
    """Concentration, asymmetry and smoothness (CAS) of the galaxy at each image's centre.

    See `nonparametric_morphology` for the parameters.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``x``, ``y``, ``concentration``, ``asymmetry``, ``smoothness``,
        ``merger`` (asymmetry > 0.35, Conselice 2003), ``flags``.
    """
    table = nonparametric_morphology(images, band, position)
    table["merger"] = table["asymmetry_merger"]
    return table["x", "y", *_CAS, "merger", "flags"]


def gini_m20(images, band=None, position=None):
    """Gini coefficient and M20 of the galaxy at each image's centre.

    See `nonparametric_morphology` for the parameters.

    Returns
    -------
    table : `~astropy.table.QTable`
        ``x``, ``y``, ``gini``, ``m20``, ``gini_m20_merger`` (0.139 M20 +
        0.990 G - 0.327), ``merger`` (above the Lotz et al. 2008 line),
        ``flags``.
    """
    table = nonparametric_morphology(images, band, position)
    table["merger"] = table["lotz_merger"]
    return table["x", "y", *_GINI_M20, "merger", "flags"]
