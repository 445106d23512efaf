# Licensed under a 3-clause BSD style license - see LICENSE.rst
import os

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from galaxyml.datasets import (TrainingPairs, degradation_distribution, dihedral_transform,
                               galaxy_catalog, galaxygan_grid, make_galaxygan_pairs,
                               make_psfgan_pairs, split_by_region)
from galaxyml.exceptions import InvalidParameterError, OutputExistsError, UnknownBandError
from galaxyml.stretch import GalaxyGANStretch

GRID = [(1.4 * u.arcsec, 1.0), (2.5 * u.arcsec, 5.0)]


def test_galaxy_catalog_keeps_galaxies_not_stars(training_field):
    field, images, catalog = training_field
    truth = field.truth
    assert catalog.meta["selection"]["extended"] < catalog.meta["selection"]["magnitude"]
    assert len(catalog) >= 10
    truth_sky = SkyCoord(truth["ra"], truth["dec"])
    index, separation, _ = catalog["sky_centroid"].match_to_catalog_sky(truth_sky)
    assert np.all(separation < 1 * u.arcsec)
    assert np.all(truth["kind"][index] == "galaxy")
    assert np.all(np.diff(catalog["flux"].value) <= 0)


def test_split_by_region():
    catalog = QTable({"ra": np.linspace(359.5, 360.5, 11) % 360 * u.deg,
                      "dec": np.zeros(11) * u.deg})
    split, boundary = split_by_region(catalog, test_fraction=0.3)
    assert boundary.to_value(u.deg) == pytest.approx(0.2)
    assert list(split).count("test") == 3
    # Across RA = 0 the order follows the sky, not the numbers.
    assert list(split[:8]) == ["train"] * 8
    guarded, _ = split_by_region(catalog, test_fraction=0.3, guard=0.15 * u.deg)
    assert list(guarded).count("guard") == 3
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_region(catalog, test_fraction=1.0)


@pytest.fixture(scope="module")
def galaxygan_pairs(training_field):
    _, images, catalog = training_field
    return make_galaxygan_pairs(images, catalog=catalog, size=48, grid=GRID, seed=4,
                                progress=False)


def test_galaxygan_pairs_split_and_content(galaxygan_pairs, training_field):
    pairs = galaxygan_pairs
    manifest = pairs.manifest
    assert len(pairs) == 2 * len(np.unique(manifest["galaxy_id"]))
    train, test = pairs.subset("train"), pairs.subset("test")
    assert len(train) + len(test) == len(pairs)
    # No galaxy on both sides, and no train stamp overlaps a test stamp.
    assert not set(train.manifest["galaxy_id"]) & set(test.manifest["galaxy_id"])
    train_sky = SkyCoord(train.manifest["ra"], train.manifest["dec"])
    test_sky = SkyCoord(test.manifest["ra"], test.manifest["dec"])
    stamp_diagonal = 48 * np.sqrt(2) * 0.396 * u.arcsec
    assert train_sky.separation(test_sky[:, None]).min() > stamp_diagonal / 2
    assert train.manifest["ra"].max() < test.manifest["ra"].min()
    # Degraded condition: noise sigma times the target's (the GalaxyGAN estimator).
    row = np.flatnonzero(manifest["sigma"] == 5.0)[0]
    condition, target = pairs.linear_pair(row)
    for k in range(3):
        sky = (slice(0, 8), slice(None))  # a strip of sky along the stamp's edge
        ratio = np.std(condition.data[k][sky]) / np.std(target.data[k][sky])
        assert 3.0 < ratio < 8.0  # the recipe itself is checked on pure noise in degrade
    stretched = pairs.pair(row)
    assert stretched[0].shape == (48, 48, 3) and stretched[0].dtype == np.float32
    assert np.all((stretched[1] >= 0) & (stretched[1] <= 1))


def test_pairs_are_reproducible_in_any_order(galaxygan_pairs, training_field):
    _, images, catalog = training_field
    again = make_galaxygan_pairs(images, catalog=catalog, size=48, grid=GRID, seed=4,
                                 progress=False)
    last = len(again) - 1
    assert np.array_equal(again.pair(last)[0], galaxygan_pairs.pair(last)[0])
    assert not np.array_equal(galaxygan_pairs.pair(0)[0], galaxygan_pairs.pair(1)[0])


def test_to_dataset_batches_and_augments(galaxygan_pairs):
    import tensorflow as tf

    dataset = galaxygan_pairs.to_dataset(batch_size=4, shuffle=True, augment=True, seed=1)
    condition, target = next(iter(dataset))
    assert condition.shape == (4, 48, 48, 3) and target.shape == (4, 48, 48, 3)
    first = [c.numpy() for c, _ in galaxygan_pairs.to_dataset(
        batch_size=4, shuffle=True, augment=True, seed=1).take(2)]
    second = [c.numpy() for c, _ in galaxygan_pairs.to_dataset(
        batch_size=4, shuffle=True, augment=True, seed=1).take(2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    # The same one of the 8 symmetries is applied to both images of a pair.
    image = tf.constant(np.arange(5 * 5 * 2, dtype=np.float32).reshape(5, 5, 2))
    seen = set()
    for k in range(120):
        a, b = dihedral_transform((image, image * 2), tf.constant([7, k], tf.int64))
        assert np.array_equal(a.numpy() * 2, b.numpy())
        seen.add(a.numpy().tobytes())
    assert len(seen) == 8


def test_write_read_and_resume(galaxygan_pairs, tmp_path):
    pairs = galaxygan_pairs.subset("test")
    manifest_path = pairs.write(tmp_path / "set", progress=False)
    again = TrainingPairs.read(tmp_path / "set")
    assert len(again) == len(pairs) and again.bands == ("g", "r", "i")
    assert again.stretch.to_dict() == pairs.stretch.to_dict()
    for index in (0, len(pairs) - 1):
        assert np.allclose(again.pair(index)[0], pairs.pair(index)[0], atol=1e-6)
    with pytest.raises(OutputExistsError):
        pairs.write(tmp_path / "set", progress=False)
    # An interrupted run (no manifest yet) resumes: files already written are kept.
    manifest_path.unlink()
    files = sorted((tmp_path / "set").glob("pair-*.fits"))
    kept = files[0].stat().st_mtime_ns
    files[-1].unlink()
    pairs.write(tmp_path / "set", progress=False)
    assert files[0].stat().st_mtime_ns == kept
    assert files[-1].exists()
    assert not [name for name in os.listdir(tmp_path / "set") if "partial" in name]


def test_psfgan_pairs(training_field):
    field, images, catalog = training_field
    pairs = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                              n_per_galaxy=2, seed=5, progress=False)
    manifest = pairs.manifest
    assert pairs.bands == ("r",)
    assert np.all((manifest["contrast"] >= 0.1) & (manifest["contrast"] <= 10))
    assert np.allclose(manifest["ps_flux"].value,
                       manifest["contrast"] * manifest["host_flux"].value)
    condition, target = pairs.linear_pair(0)
    added = condition.data[0] - target.data[0]
    assert added.sum() == pytest.approx(manifest["ps_flux"][0].value, rel=0.05)
    yy, xx = np.indices(added.shape)
    assert (added * xx).sum() / added.sum() == pytest.approx(manifest["x_ps"][0], abs=0.3)
    # The default stretch clips no bright pixel of the training side's conditions.
    train = pairs.subset("train")
    assert all(np.nanmax(train.linear_pair(k)[0].data) <= pairs.stretch.clip_max
               for k in range(len(train)))
    # Conditions are cutouts with the source's photon noise in their uncertainty and the
    # frame's metadata, ready for remove_point_source and the fits.
    assert condition.bands == ("r",) and condition.meta["origin"] == target.meta["origin"]
    peak = np.unravel_index(np.argmax(added), added.shape)
    assert condition.uncertainty[(0, *peak)] > target.uncertainty[(0, *peak)]


def test_psfgan_pairs_at_fixed_contrasts_and_psf_widths(training_field):
    field, images, catalog = training_field
    pairs = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                              contrasts=[0.5, 4.0], n_per_galaxy=2, psf_scale=1.5,
                              progress=False)
    manifest = pairs.manifest
    n_galaxies = len(np.unique(manifest["galaxy_id"]))
    assert len(pairs) == 4 * n_galaxies
    assert sorted(set(manifest["contrast"])) == [0.5, 4.0]
    assert np.all(manifest["psf_scale"] == 1.5)
    assert len(set(manifest["seed"])) == len(pairs)  # realisations differ in their noise
    ranged = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                               n_per_galaxy=3, psf_scale=(0.5, 1.5), progress=False)
    scales = ranged.manifest["psf_scale"]
    assert np.all((scales >= 0.5) & (scales <= 1.5)) and len(set(scales)) == len(ranged)

    def width(pairs, k):
        condition, target = pairs.linear_pair(k)
        added = condition.data[0] - target.data[0]
        yy, xx = np.indices(added.shape)
        x0, y0 = (added * xx).sum() / added.sum(), (added * yy).sum() / added.sum()
        near = np.hypot(xx - x0, yy - y0) < 8
        return np.sqrt((added * ((xx - x0) ** 2 + (yy - y0) ** 2))[near].sum()
                       / added[near].sum())

    narrow = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                               contrasts=[50.0], psf_scale=1.0, progress=False)
    index = int(np.flatnonzero(manifest["contrast"] == 4.0)[0])
    assert width(pairs, index) / width(narrow, 0) == pytest.approx(1.5, rel=0.15)
    with pytest.raises(InvalidParameterError):
        make_psfgan_pairs(images, field.files.psfield, catalog=catalog, psf_scale=(1.5, 0.5),
                          progress=False)


def test_psfgan_pairs_without_a_point_source(training_field):
    field, images, catalog = training_field
    pairs = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                              contrasts=[0.0, 2.0], progress=False)
    none = int(np.flatnonzero(pairs.manifest["contrast"] == 0)[0])
    condition, target = pairs.linear_pair(none)
    assert pairs.manifest["ps_flux"][none] == 0 and np.array_equal(condition.data, target.data)
    drawn = make_psfgan_pairs(images, field.files.psfield, catalog=catalog, size=48,
                              n_per_galaxy=20, no_agn_fraction=0.3, progress=False)
    share = np.mean(drawn.manifest["contrast"] == 0)
    assert 0.15 < share < 0.45
    with pytest.raises(InvalidParameterError):
        make_psfgan_pairs(images, field.files.psfield, catalog=catalog, no_agn_fraction=1.5,
                          progress=False)


def test_galaxygan_pairs_from_a_distribution(training_field):
    _, images, catalog = training_field

    def draw(rng):
        return rng.uniform(1.0, 3.0) * u.arcsec, rng.choice([1.5, 4.0])

    pairs = make_galaxygan_pairs(images, catalog=catalog, size=48, grid=draw, n_per_galaxy=3,
                                 seed=2, progress=False)
    manifest = pairs.manifest
    assert len(pairs) == 3 * len(np.unique(manifest["galaxy_id"]))
    assert np.all((manifest["fwhm"].value >= 1.0) & (manifest["fwhm"].value <= 3.0))
    assert set(manifest["sigma"]) <= {1.5, 4.0}
    assert len(np.unique(manifest["fwhm"])) == len(pairs)
    assert pairs.pair(len(pairs) - 1)[0].shape == (48, 48, 3)


def test_missing_band(training_field):
    _, images, catalog = training_field
    with pytest.raises(UnknownBandError, match="'z'"):
        make_galaxygan_pairs(images, catalog=catalog, bands="gz", size=48, progress=False)


def test_default_grid_is_the_papers():
    grid = galaxygan_grid()
    assert len(grid) == 20
    assert {fwhm.value for fwhm, _ in grid} == {1.4, 1.8, 2.2, 2.5}
    assert {sigma for _, sigma in grid} == {1.0, 1.2, 2.0, 5.0, 10.0}


def test_real_field_selection(sdss_frames):
    from galaxyml.degrade.core import background_std

    catalog = galaxy_catalog(sdss_frames, mag_range=(12, 19))
    assert 15 <= len(catalog) <= 60
    # Nothing from the globular cluster M2 near (347, 903) in the r frame.
    assert np.all(np.hypot(catalog["x"] - 347, catalog["y"] - 903) > 150)
    # The galaxies are where their catalogue positions say: a faint source beside a bright
    # star's halo (dropped for its size) no longer borrows the halo's light in its Kron
    # aperture and passes as a bright galaxy (before the fix, 20 of the 34 held-out r < 19
    # stamps had no source at their centre; an irregular galaxy's centroid may still fall
    # between its clumps).
    image = sdss_frames["r"].data
    noise = background_std(image)
    centres = image[np.round(catalog["y"]).astype(int), np.round(catalog["x"]).astype(int)]
    assert np.mean(centres > 5 * noise) >= 0.85


def test_shifted_pairs_move_the_galaxy_and_its_wcs(training_field):
    _, images, catalog = training_field
    still = make_galaxygan_pairs(images, catalog=catalog, size=48, grid=GRID[:1], seed=2,
                                 progress=False)
    shifted = make_galaxygan_pairs(images, catalog=catalog, size=48, grid=GRID[:1], seed=2,
                                   max_shift=3.0, progress=False)
    manifest = shifted.manifest
    assert np.all(np.abs(manifest["dx"]) <= 3) and np.all(np.abs(manifest["dy"]) <= 3)
    assert len(np.unique(manifest["dx"])) == len(shifted)  # a shift of its own per pair
    assert np.all(still.manifest["dx"] == 0)
    row = int(np.argmax(np.hypot(manifest["dx"], manifest["dy"])))
    # Galaxies whose larger stamp (shift margin) leaves the image are left out.
    assert set(manifest["galaxy_id"]) <= set(still.manifest["galaxy_id"])
    same = int(np.flatnonzero(still.manifest["galaxy_id"] == manifest["galaxy_id"][row])[0])
    _, original = still.linear_pair(same)
    _, moved = shifted.linear_pair(row)
    band = original.bands.index("r")

    # The light moved by the drawn shift (phase correlation of the central region), and
    # the WCS with it: the same pixel of the sky has the same coordinates.
    from skimage.registration import phase_cross_correlation
    centre = (slice(8, 40), slice(8, 40))
    shift, _, _ = phase_cross_correlation(moved.data[band][centre], original.data[band][centre],
                                          upsample_factor=20)
    assert shift == pytest.approx([manifest["dy"][row], manifest["dx"][row]], abs=0.15)
    x, y = 24.0, 24.0
    sky = original.wcs.pixel_to_world(x, y)
    moved_sky = moved.wcs.pixel_to_world(x + manifest["dx"][row], y + manifest["dy"][row])
    assert sky.separation(moved_sky) < 0.01 * u.arcsec
    # A Fourier shift keeps white noise white: the sky's scatter is unchanged.
    from galaxyml.degrade.core import background_std
    assert background_std(moved.data[band]) == pytest.approx(
        background_std(original.data[band]), rel=0.1)
    with pytest.raises(InvalidParameterError, match="max_shift"):
        make_galaxygan_pairs(images, catalog=catalog, size=48, max_shift=-1, progress=False)


def test_degradation_distribution_covers_the_grid():
    draw = degradation_distribution()
    rng = np.random.default_rng(0)
    fwhms, sigmas = zip(*(draw(rng) for _ in range(2000)))
    fwhms = u.Quantity(fwhms).to_value(u.arcsec)
    assert fwhms.min() < 1.4 and fwhms.max() > 2.5 and np.all((fwhms >= 1.2) & (fwhms <= 2.7))
    sigmas = np.array(sigmas)
    assert sigmas.min() >= 1 and sigmas.max() <= 12
    # Log-uniform: as many draws in [1, 3.46] as in [3.46, 12].
    assert np.mean(sigmas < np.sqrt(12)) == pytest.approx(0.5, abs=0.05)
    with pytest.raises(InvalidParameterError, match="sigma_range"):
        degradation_distribution(sigma_range=(0.5, 2))


def test_data_range_stretch_clips_nothing_and_keeps_the_faint_contrast(training_field):
    _, images, catalog = training_field
    pairs = make_galaxygan_pairs(images, catalog=catalog, size=48, grid=GRID, stretch="data",
                                 progress=False)
    stretch = pairs.stretch
    train = pairs.subset("train")
    peak = max(float(train.linear_pair(k)[1].data.max()) for k in range(len(train)))
    assert peak < stretch.clip_max <= 1.02 * peak
    assert not np.any(train.linear_pair(0)[1].data > stretch.clip_max)
    paper = GalaxyGANStretch()
    faint = np.array([0.0, 1e-3])
    assert np.diff(stretch(faint))[0] == pytest.approx(np.diff(paper(faint))[0], rel=0.02)
    assert stretch.inverse(stretch(np.array([peak]))) == pytest.approx(peak)


@pytest.mark.parametrize("progress", [False, True])
def test_samples_in_memory_are_the_samples(galaxygan_pairs, progress):
    stored = galaxygan_pairs.in_memory(workers=2, progress=progress)
    assert len(stored) == len(galaxygan_pairs)
    for k in (0, len(stored) - 1):
        for a, b in zip(stored.sample(k), galaxygan_pairs.sample(k)):
            assert np.array_equal(a, b)
    test = stored.subset("test")
    first_test = int(np.flatnonzero(galaxygan_pairs.manifest["split"] == "test")[0])
    assert np.array_equal(test.sample(0)[1], galaxygan_pairs.sample(first_test)[1])
    batch = next(iter(stored.training_dataset(4, seed=0)))
    assert batch[0].shape == (4, 48, 48, 3)


def test_dihedral_transform_of_images_with_different_channels():
    import tensorflow as tf

    image = tf.constant(np.arange(5 * 5 * 4, dtype=np.float32).reshape(5, 5, 4))
    for k in range(16):
        a, b = dihedral_transform((image, image[..., :1]), tf.constant([3, k], tf.int64))
        assert a.shape == (5, 5, 4) and b.shape == (5, 5, 1)
        assert np.array_equal(a.numpy()[..., :1], b.numpy())
