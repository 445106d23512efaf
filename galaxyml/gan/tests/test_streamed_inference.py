# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Inference in bounded memory: images a group of tiles at a time, each batch of tiles blended
as it comes, dropout draws folded in."""

import weakref

import numpy as np
import pytest

from galaxyml.gan import GalaxyGAN
from galaxyml.gan import base


@pytest.fixture(scope="module")
def model():
    return GalaxyGAN.pretrained()


def _images():
    rng = np.random.default_rng(3)
    stamps = [np.abs(rng.normal(0.1, 0.05, size=(3, 64, 64))) for _ in range(5)]
    return stamps + [np.abs(rng.normal(0.1, 0.05, size=(3, 300, 280)))]


def test_groups_change_neither_outputs_nor_order(model, monkeypatch):
    images = _images()
    whole = model.recover(images, fwhm=1.4, batch_size=2)
    monkeypatch.setattr(base, "_GROUP_BATCHES", 1)  # groups of at most 2 tiles
    grouped = model.recover(images, fwhm=1.4, batch_size=2)
    assert all(np.array_equal(a, b) for a, b in zip(whole, grouped))


def test_memory_holds_one_group_one_batch_and_one_draw(model, monkeypatch):
    calls, alive = [], []
    batches = base.ImageToImageModel._batches

    def spy(self, tiles, batch_size, training):
        calls.append(len(tiles))
        earlier = []
        for indices, outputs in batches(self, tiles, batch_size, training):
            alive.append(sum(ref() is not None for ref in earlier))
            earlier.append(weakref.ref(outputs))
            yield indices, outputs

    monkeypatch.setattr(base.ImageToImageModel, "_batches", spy)
    monkeypatch.setattr(base, "_GROUP_BATCHES", 1)
    images = _images()
    results = model.recover(images, fwhm=1.4, samples=3, batch_size=2)
    big_tiles = len(base.cut_tiles(np.zeros((300, 280, 3)), model.tile_size,
                                   model.tile_size // 4, model.size_multiple))
    # Five stamps in groups of two tiles, then the large image alone; three draws each.
    assert calls == [2] * 3 + [2] * 3 + [1] * 3 + [big_tiles] * 3
    # A batch's outputs are blended and let go before the next batch is made (the
    # single-tile stamps are kept as their images, at most the one being drawn).
    assert big_tiles > 4 and max(alive) <= 1
    mean, std = results[-1]
    assert mean.shape == std.shape == (3, 300, 280) and np.all(std >= 0) and std.max() > 0


def test_running_moments_match_numpy():
    draws = np.random.default_rng(0).normal(size=(6, 5, 4, 3))
    mean, std = base._mean_and_spread(draws, samples=6)
    assert np.allclose(mean, np.moveaxis(draws.mean(axis=0), -1, 0))
    assert np.allclose(std, np.moveaxis(draws.std(axis=0), -1, 0))
    mean, std = base._mean_and_spread(draws[:1], samples=None)
    assert std is None and np.array_equal(mean, np.moveaxis(draws[0], -1, 0))
