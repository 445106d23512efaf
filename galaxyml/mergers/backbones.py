# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Convolutional backbones of the merger classifier and where their weights come from."""

import warnings
from pathlib import Path

import keras

from ..exceptions import InvalidParameterError, MissingFileError, WeightsError

__all__ = ["BACKBONES", "build_backbone", "small_cnn"]


def small_cnn(input_shape, filters=(32, 64, 128, 256), seed=0, name="small_cnn"):
    """galaxyml's own small CNN: blocks of two 3x3 convolutions, batch norm, max pooling.

    Light enough to train on a laptop's CPU; the backbone of the offline
    transfer source (``weights="natural"``).

    Returns
    -------
    model : `keras.Model`
        Images (ny, nx, 3) in [0, 1] -> a feature vector (global average).
    """
    init = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    for k, n in enumerate(filters):
        for j in range(2):
            x = keras.layers.Conv2D(n, 3, padding="same", use_bias=False,
                                    kernel_initializer=init, name=f"block{k}_conv{j}")(x)
            x = keras.layers.BatchNormalization(name=f"block{k}_bn{j}")(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(name=f"block{k}_pool")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=name)


def _keras_application(constructor, preprocess, minimum):
    def build(input_shape, weights, seed):
        if min(input_shape[:2]) < minimum:
            raise InvalidParameterError(f"this backbone needs images of at least {minimum} "
                                        f"pixels, not {input_shape[:2]}")
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(input_shape)
        # Images arrive in [0, 1]; keras.applications expect their own scaling.
        scaled = preprocess(inputs)
        base = constructor(include_top=False, weights=weights, input_shape=input_shape,
                           pooling="avg")
        return keras.Model(inputs, base(scaled), name=base.name)
    return build


def _to_minus_one_one(inputs):
    return keras.layers.Rescaling(2.0, offset=-1.0)(inputs)


#: Backbone name -> (builder, smallest input side, default input side).
BACKBONES = {
    "xception": (_keras_application(keras.applications.Xception, _to_minus_one_one, 71),
                 71, 299),
    "mobilenet": (_keras_application(keras.applications.MobileNetV2, _to_minus_one_one, 32),
                  32, 96),
    "small": (None, 16, 96),
}


def build_backbone(name, input_size, weights=None, seed=0):
    """A backbone with the weights asked for.

    Parameters
    ----------
    name : {'xception', 'mobilenet', 'small'}
        Xception (as in Ackermann et al. 2018), MobileNetV2 (light), or
        galaxyml's `small_cnn`.
    input_size : int
        Side of the square input.
    weights : None, 'imagenet', 'natural', or path
        None: random; ``'imagenet'``: Keras's own loading (its cache,
        ``~/.keras/models``), for the keras.applications backbones;
        ``'natural'``: the small CNN pretrained by galaxyml on natural
        photographs (shipped); a path: weights saved by ``save_weights``
        (``.weights.h5``) for this backbone.

    Raises
    ------
    MissingFileError
        ImageNet weights not in Keras's cache and no network to fetch them.
    WeightsError
        Weights that do not fit the backbone.
    """
    if name not in BACKBONES:
        raise InvalidParameterError(f"backbone must be one of {sorted(BACKBONES)}, not {name!r}")
    builder, minimum, _ = BACKBONES[name]
    input_shape = (int(input_size), int(input_size), 3)
    if input_size < minimum:
        raise InvalidParameterError(f"the {name} backbone needs images of at least {minimum} "
                                    f"pixels, not {input_size}")
    if name == "small":
        if weights == "imagenet":
            raise InvalidParameterError("there are no ImageNet weights of galaxyml's small CNN: "
                                        "use weights='natural' for its offline transfer source")
        backbone = small_cnn(input_shape, seed=seed)
        if weights == "natural":
            _load_weights(backbone, _natural_weights_path())
        elif weights is not None:
            _load_weights(backbone, weights)
        return backbone
    if weights == "natural":
        raise InvalidParameterError(f"the natural-image weights are for backbone='small', not "
                                    f"{name!r}")
    if weights == "imagenet":
        try:
            return builder(input_shape, "imagenet", seed)
        except Exception as exc:  # no network: urllib's errors, wrapped by keras
            if "URL" not in str(exc) and "fetch" not in str(exc).lower():
                raise
            raise MissingFileError(
                f"cannot download the ImageNet weights of {name} ({exc}); put the file Keras "
                f"asks for in {_keras_cache() / 'models'} (its cache) or pass "
                "weights=<path>") from exc
    backbone = builder(input_shape, None, seed)
    if weights is not None:
        _load_weights(backbone, weights)
    return backbone


def _keras_cache():
    """Keras's cache directory: $KERAS_HOME, else ~/.keras."""
    import os

    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _natural_weights_path():
    from importlib import resources

    path = resources.files("galaxyml.mergers") / "data" / "natural-backbone.weights.h5"
    if not Path(str(path)).is_file():
        raise MissingFileError("the natural-image backbone weights are missing from this "
                               "installation (galaxyml/mergers/data/natural-backbone.weights.h5)")
    return Path(str(path))


def _load_weights(backbone, path):
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such weights file")
    try:
        with warnings.catch_warnings():
            # Keras warns, then loads what it can, when layers do not match: refuse.
            warnings.simplefilter("error", UserWarning)
            backbone.load_weights(path)
    except (ValueError, KeyError, UserWarning) as exc:
        raise WeightsError(f"{path}: the weights do not fit the {backbone.name} backbone "
                           f"({str(exc)[:300]})") from exc
