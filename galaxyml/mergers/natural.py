# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""An offline transfer source: crops of the natural photographs shipped in scikit-image and
scikit-learn.

Keras's ImageNet weights cannot be downloaded everywhere (clusters without
internet, these machines); the photographs that ship inside the wheels of
scikit-image (astronaut, coffee, rocket, textures, microscope images, ...)
and scikit-learn (china, flower) can.  `natural_crops` cuts random crops
of them, at random scales, for a crop-classification task (which photograph
is this crop from?) that `scripts/pretrain_natural_backbone.py` trains
galaxyml's small CNN on: the ``weights='natural'`` transfer source.
No astronomical image is among them.
"""

import numpy as np

from ..exceptions import InvalidParameterError
from ..utils._optional import optional_import

__all__ = ["NATURAL_PHOTOGRAPHS", "natural_photographs", "natural_crops"]

#: The photographs used (scikit-image's ``skimage.data`` functions, scikit-learn's sample
#: images); the astronomical ones (``hubble_deep_field``, ``moon``) and the synthetic ones
#: are left out.
NATURAL_PHOTOGRAPHS = ("astronaut", "brick", "camera", "chelsea", "cell", "clock", "coffee",
                       "coins", "grass", "gravel", "immunohistochemistry", "retina", "rocket",
                       "page", "text", "motorcycle", "china", "flower")


def natural_photographs():
    """The photographs of `NATURAL_PHOTOGRAPHS` as (ny, nx, 3) uint8 arrays, by name."""
    from skimage import data
    load_sample_image = optional_import("sklearn.datasets", "The natural photographs",
                                        "mergers").load_sample_image

    photographs = {}
    for name in NATURAL_PHOTOGRAPHS:
        if name in ("china", "flower"):
            image = load_sample_image(f"{name}.jpg")
        elif name == "motorcycle":
            image = data.stereo_motorcycle()[0]
        else:
            image = getattr(data, name)()
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photographs[name] = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    return photographs


def natural_crops(n, size=64, scale=(0.1, 0.6), grey_fraction=0.3, seed=0):
    """Random square crops of the natural photographs, labelled by photograph.

    Parameters
    ----------
    n : int
        Number of crops.
    size : int
        Side of the crops after resizing.
    scale : (float, float)
        Range of the crop's side as a fraction of the photograph's shorter
        side (log-uniform), so that the network sees objects and textures
        at many scales.
    grey_fraction : float
        Fraction of crops turned grey, so that colour alone does not tell
        the photographs apart.
    seed : int

    Returns
    -------
    crops : (n, size, size, 3) uint8
    labels : (n,) int
        Index into `NATURAL_PHOTOGRAPHS`.
    """
    from skimage.transform import resize

    if not 0 < scale[0] <= scale[1] <= 1:
        raise InvalidParameterError(f"scale must be within (0, 1], not {scale}")
    photographs = list(natural_photographs().values())
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(photographs), size=n)
    crops = np.empty((n, size, size, 3), np.uint8)
    for k, label in enumerate(labels):
        image = photographs[label]
        ny, nx = image.shape[:2]
        side = int(min(ny, nx) * np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
        side = max(side, 8)
        y0, x0 = rng.integers(ny - side + 1), rng.integers(nx - side + 1)
        crop = resize(image[y0:y0 + side, x0:x0 + side], (size, size), anti_aliasing=True,
                      preserve_range=True)
        if rng.random() < grey_fraction:
            crop = np.repeat(crop.mean(axis=-1, keepdims=True), 3, axis=-1)
        crops[k] = np.clip(np.rint(crop), 0, 255).astype(np.uint8)
    return crops, labels
