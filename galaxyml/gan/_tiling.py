# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Images of any size through a fully convolutional network: in-painting, tiles, blending."""

import numpy as np

from ..utils._images import inpaint

__all__ = ["inpaint", "cut_tiles", "TileBlender", "batches_by_shape"]


def cut_tiles(image, tile, overlap, multiple):
    """(origin, tile) pairs covering an (ny, nx, c) image; small images are padded.

    An image up to ``tile`` on a side is one tile, reflect-padded to a
    multiple of ``multiple``; a larger one is cut into ``tile`` x ``tile``
    tiles overlapping by at least ``overlap``.
    """
    ny, nx = image.shape[:2]
    if ny <= tile and nx <= tile:
        py, px = (-ny) % multiple, (-nx) % multiple
        padded = np.pad(image, ((0, py), (0, px), (0, 0)), mode="reflect") if py or px \
            else image
        return [((0, 0), padded)]
    if ny < tile or nx < tile:
        image = np.pad(image, ((0, max(tile - ny, 0)), (0, max(tile - nx, 0)), (0, 0)),
                       mode="reflect")
        ny, nx = image.shape[:2]
    return [((y0, x0), image[y0:y0 + tile, x0:x0 + tile])
            for y0 in _starts(ny, tile, overlap) for x0 in _starts(nx, tile, overlap)]


def _starts(length, tile, overlap):
    if length <= tile:
        return [0]
    count = int(np.ceil((length - overlap) / (tile - overlap)))
    return np.linspace(0, length - tile, count).round().astype(int).tolist()


class TileBlender:
    """Overlapping tiles blended as they come, with weights that taper to the tile edges.

    Memory holds the blended image and its weights, not the tiles.
    """

    def __init__(self, origins, shape, overlap):
        self.origins, self.shape, self.overlap = list(origins), tuple(shape), overlap
        self._total = self._weights = self._weight = self._only = None

    def add(self, index, values):
        """Add the output tile of ``origins[index]``."""
        if len(self.origins) == 1 and self.origins[0] == (0, 0):
            self._only = values
            return
        tile = values.shape[0]
        if self._total is None:
            ramp = np.minimum(np.arange(tile) + 0.5, tile - np.arange(tile) - 0.5)
            taper = np.clip(ramp / max(self.overlap, 1), 1e-3, 1.0)
            self._weight = np.outer(taper, taper)[..., None]
            height = max(o[0] for o in self.origins) + tile
            width = max(o[1] for o in self.origins) + tile
            self._total = np.zeros((height, width, values.shape[-1]))
            self._weights = np.zeros((height, width, 1))
        y0, x0 = self.origins[index]
        self._total[y0:y0 + tile, x0:x0 + tile] += self._weight * values
        self._weights[y0:y0 + tile, x0:x0 + tile] += self._weight

    def result(self):
        """The blended (ny, nx, channels) image."""
        ny, nx = self.shape
        if self._only is not None:
            return self._only[:ny, :nx]
        return (self._total / self._weights)[:ny, :nx]


def batches_by_shape(tiles, batch_size):
    """Lists of tile indices, at most ``batch_size`` each, every list of one tile shape.

    Tiles of images of different sizes cannot be stacked into one batch.
    """
    groups = {}
    for index, tile in enumerate(tiles):
        groups.setdefault(tile.shape, []).append(index)
    return [indices[start:start + batch_size] for indices in groups.values()
            for start in range(0, len(indices), batch_size)]
