# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy.modeling.models import Sersic2D
from astropy.nddata import CCDData, StdDevUncertainty

from galaxyml.exceptions import BandMismatchError
from galaxyml.io import MultiBandCutout
from galaxyml.morphology import (ASYMMETRY_MERGER_THRESHOLD, cas, gini_m20,
                                 nonparametric_morphology)

pytest.importorskip("statmorph")

NOISE = 0.01


def disk(x0=31.5, y0=31.5, amplitude=1.0, r_eff=5.0, n=1.0, ellip=0.3, theta=0.5):
    yy, xx = np.mgrid[:64, :64]
    return Sersic2D(amplitude, r_eff, n, x0, y0, ellip, theta)(xx, yy)


def noisy(image, seed=0):
    return image + np.random.default_rng(seed).normal(0, NOISE, image.shape)


def test_isolated_disk_is_not_a_merger_and_a_close_pair_is():
    isolated = noisy(disk())
    # Two equal disks overlapping, with a tail: strongly asymmetric about the brighter centre.
    tail = 0.3 * disk(46, 44, r_eff=8, ellip=0.8, theta=0.8)
    pair = noisy(disk() + 0.9 * disk(39.5, 36.0, theta=1.6) + tail)
    table = nonparametric_morphology(np.stack([isolated, pair]))
    assert len(table) == 2 and set(table["flags"]) == {0}
    assert table["asymmetry"][0] < 0.1 < table["asymmetry"][1]
    assert table["concentration"][0] == pytest.approx(2.7, abs=0.4)  # an exponential disk
    assert not table["asymmetry_merger"][0]
    assert table["asymmetry_merger"][1] == (table["asymmetry"][1] > ASYMMETRY_MERGER_THRESHOLD)
    # Lotz et al. 2008: 0.139 M20 + 0.990 G - 0.327.
    line = 0.139 * table["m20"] + 0.990 * table["gini"] - 0.327
    assert np.allclose(table["gini_m20_merger"], line, atol=1e-6)


def test_neighbours_are_masked():
    """A separate neighbour must not change the central galaxy's asymmetry."""
    alone = noisy(disk(31.5, 31.5, r_eff=3))
    with_neighbour = alone + disk(8, 8, r_eff=2, amplitude=2)
    a, b = nonparametric_morphology([alone, with_neighbour])["asymmetry"]
    assert b == pytest.approx(a, abs=0.02)


def test_cas_and_gini_m20_tables_use_statmorphs_names():
    image = CCDData(noisy(disk()), unit="nmgy",
                    uncertainty=StdDevUncertainty(np.full((64, 64), NOISE)))
    table = cas(image)
    assert table.colnames == ["x", "y", "concentration", "asymmetry", "smoothness", "merger",
                              "flags"]
    table = gini_m20(image)
    assert table.colnames == ["x", "y", "gini", "m20", "gini_m20_merger", "merger", "flags"]
    assert 0 < table["gini"][0] < 1 and table["m20"][0] < 0


def test_blank_image_is_flagged_not_raised():
    table = cas(np.random.default_rng(1).normal(0, NOISE, (64, 64)))
    assert table["flags"][0] & 1 and np.isnan(table["asymmetry"][0])


def test_multiband_cutout_needs_a_band():
    from galaxyml.degrade.tests.test_degrade import sky_wcs

    data = np.stack([noisy(disk(), seed) for seed in range(2)])
    cutout = MultiBandCutout(data, ("g", "r"), sky_wcs((64, 64)), "nmgy")
    with pytest.raises(BandMismatchError, match="choose one"):
        cas(cutout)
    assert np.isfinite(cas(cutout, band="r")["asymmetry"][0])


def test_nan_pixels_are_inpainted_and_flagged():
    image = noisy(disk())
    image[30:33, 30:33] = np.nan
    table = gini_m20(image)
    assert table["flags"][0] & 8 and np.isfinite(table["gini"][0])
