# Licensed under a 3-clause BSD style license - see LICENSE.rst
import numpy as np
import pytest
from astropy import units as u

from galaxyml.exceptions import StretchClippingWarning
from galaxyml.io import multiband_cutout
from galaxyml.stretch import GalaxyGANStretch, PSFGANStretch, stretch_from_dict


def test_galaxygan_formula_and_inverse():
    stretch = GalaxyGANStretch()
    x = np.random.default_rng(0).uniform(-0.1, 4.0, 10000)
    expected = np.arcsinh(10 * (x + 0.1) / 4.1) / 3
    assert np.allclose(stretch(x), expected, rtol=1e-12)
    inside = np.abs(x) > 1e-3  # relative precision is meaningless at zero
    assert np.allclose(stretch.inverse(stretch(x))[inside], x[inside], rtol=1e-6, atol=0)


def test_psfgan_formula_and_inverse():
    stretch = PSFGANStretch(clip_max=30.0)
    x = np.random.default_rng(1).uniform(-0.1, 30.0, 10000)
    assert np.allclose(stretch(x), np.arcsinh(50 * x) / np.arcsinh(50 * 30.0), rtol=1e-12)
    assert np.allclose(stretch.inverse(stretch(x)), x, rtol=1e-6)


def test_values_outside_the_range_are_reported():
    stretch = GalaxyGANStretch(clip_min=-0.2, clip_max=2.0)
    x = np.array([-1.0, 0.5, 3.0]) * u.nmgy
    assert stretch.out_of_range(x).tolist() == [True, False, True]
    with pytest.warns(StretchClippingWarning, match="2 of 3 pixels"):
        y = stretch(x)
    assert np.allclose(stretch.inverse(y), [-0.2, 0.5, 2.0])
    with pytest.raises(ValueError, match="exceed"):
        PSFGANStretch(clip_max=-1.0)


def test_round_trip_through_dict():
    for stretch in (GalaxyGANStretch(softening=5), PSFGANStretch(12.0)):
        again = stretch_from_dict(stretch.to_dict())
        assert type(again) is type(stretch) and again.to_dict() == stretch.to_dict()
    with pytest.raises(ValueError, match="unknown stretch"):
        stretch_from_dict({"name": "log"})


def test_round_trip_on_real_stamps(sdss_frames):
    """Real g, r, i stamps survive stretch and inverse to 1e-6 inside the clipping range."""
    cutout = multiband_cutout(sdss_frames, (1065.4, 1273.3), 128)
    for stretch in (GalaxyGANStretch(), PSFGANStretch(float(np.nanmax(cutout.data)))):
        data = cutout.data.astype(float)
        inside = ~stretch.out_of_range(data) & (np.abs(data) > 1e-4)
        back = stretch.inverse(stretch(data, warn=False))
        assert np.allclose(back[inside], data[inside], rtol=1e-6, atol=0)


def test_network_range_holds_the_clipping_limits():
    assert GalaxyGANStretch().network_range == (0.0, 1.0)
    stretch = PSFGANStretch(clip_max=400.0)
    low, high = stretch.network_range
    # The paper's PSFGAN stretch maps negative fluxes (half the sky) below 0.
    assert low == pytest.approx(float(stretch(np.array([-0.1]))[0])) and low < 0
    assert high == pytest.approx(1.0)


@pytest.mark.parametrize("stretch", [GalaxyGANStretch(),
                                     PSFGANStretch(clip_max=278.0, softening=6.467)],
                         ids=["galaxygan", "psfgan"])
def test_inverse_tensor_is_the_inverse(stretch):
    x = np.random.default_rng(2).uniform(stretch.clip_min, stretch.clip_max, 1000)
    stretched = stretch(x).astype(np.float32)
    inverse = np.asarray(stretch.inverse_tensor(stretched))
    assert np.allclose(inverse, stretch.inverse(stretched), rtol=1e-4, atol=1e-5)
