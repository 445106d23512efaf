# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The networks of the GANs: the pix2pix U-Net generator, the PatchGAN discriminator of
GalaxyGAN and the central-window discriminator of PSFGAN."""

import keras
from keras import layers

from ..exceptions import InvalidParameterError

__all__ = ["NETWORK_CONFIGS", "unet_generator", "patchgan_discriminator", "window_discriminator",
           "central_window"]

#: Named network sizes.  ``paper``: the 8-level U-Net of Schawinski et al. (2017) at
#: 256 x 256 with the 70 x 70 PatchGAN, for GPUs.  ``small``: 6 levels and fewer filters,
#: with under 10 MB of generator weights, that trains on a 2-core CPU at 64 to 128 pixels.
NETWORK_CONFIGS = {
    "paper": {"generator_filters": (64, 128, 256, 512, 512, 512, 512, 512),
              "discriminator_filters": (64, 128, 256, 512), "image_size": 256},
    "small": {"generator_filters": (32, 64, 96, 128, 128, 128),
              "discriminator_filters": (32, 64, 128, 256), "image_size": 128},
}

_KERNEL = 4
_DROPOUT_LEVELS = 3


def _initializer(seed):
    # pix2pix initialises convolutions from N(0, 0.02).
    return keras.initializers.RandomNormal(0.0, 0.02, seed=seed)


def unet_generator(channels_in, channels_out, filters, dropout=0.5, seed=0, residual=False,
                   refine_channels=None, name="generator"):
    """The pix2pix U-Net: 4 x 4 convolutions of stride 2 down and up, with skips.

    Encoder levels: convolution, batch normalisation (not on the first and
    the innermost level, as in the Torch pix2pix), LeakyReLU(0.2).
    Decoder levels: transposed convolution, batch normalisation, dropout 0.5
    on the first three (innermost) levels, ReLU, concatenated with the
    mirror encoder level.  The output is tanh, in [-1, 1]; or, with
    ``residual``, the input minus the last layer's linear output: the
    network then learns only what to take away (for PSFGAN, the point
    source), and every pixel it leaves alone keeps its value and noise,
    which the U-Net, whose first skip is at half resolution, cannot copy.

    Parameters
    ----------
    channels_in, channels_out : int
        Bands in and out.
    filters : sequence of int
        Filters per encoder level; the input side must be a multiple of
        2 ** len(filters).
    dropout : float
        Dropout rate of the first three decoder levels.
    seed : int
        Seed of the initial weights and of the dropout.
    residual : bool
        Subtract the last layer's output from the input (``channels_in``
        must equal ``channels_out``) instead of ending in tanh.
    refine_channels : int, optional
        Add the last layer's output to the input's channels from this one on
        (``channels_out`` of them: an image the network refines) instead of
        ending in tanh.  The last layer starts at zero, so the untrained
        network returns that image unchanged.

    Returns
    -------
    generator : `keras.Model`
        Fully convolutional: images of shape (batch, ny, nx, channels_in).
    """
    if residual and channels_in != channels_out:
        raise InvalidParameterError(f"a residual generator needs as many bands out as in, not "
                                    f"{channels_in} and {channels_out}")
    if refine_channels is not None and not 0 <= refine_channels <= channels_in - channels_out:
        raise InvalidParameterError(f"refine_channels ({refine_channels}) must leave "
                                    f"{channels_out} input channels to refine of {channels_in}")
    inputs = keras.Input((None, None, channels_in), name="condition")
    x = inputs
    skips = []
    depth = len(filters)
    for level, width in enumerate(filters):
        x = layers.Conv2D(width, _KERNEL, strides=2, padding="same", use_bias=False,
                          kernel_initializer=_initializer(seed + level),
                          name=f"down{level}_conv")(x)
        if 0 < level < depth - 1:
            x = layers.BatchNormalization(name=f"down{level}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"down{level}_act")(x)
        skips.append(x)
    for level, width in enumerate(reversed(filters[:-1])):
        x = layers.Conv2DTranspose(width, _KERNEL, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_initializer(seed + 100 + level),
                                   name=f"up{level}_conv")(x)
        x = layers.BatchNormalization(name=f"up{level}_norm")(x)
        if level < _DROPOUT_LEVELS:
            x = layers.Dropout(dropout, seed=seed + 200 + level, name=f"up{level}_dropout")(x)
        x = layers.ReLU(name=f"up{level}_act")(x)
        x = layers.Concatenate(name=f"up{level}_skip")([x, skips[depth - 2 - level]])
    refine = refine_channels is not None
    x = layers.Conv2DTranspose(channels_out, _KERNEL, strides=2, padding="same",
                               kernel_initializer="zeros" if refine else _initializer(seed + 300),
                               name="output_conv")(x)
    if refine:
        start = int(refine_channels)
        base = inputs[..., start:start + channels_out]
        outputs = layers.Add(name="output")([base, x])
    elif residual:
        outputs = layers.Subtract(name="output")([inputs, x])
    else:
        outputs = layers.Activation("tanh", name="output")(x)
    return keras.Model(inputs, outputs, name=name)


def patchgan_discriminator(channels_condition, channels_image, filters, seed=0,
                           name="discriminator"):
    """The PatchGAN discriminator of the Torch pix2pix, conditioned on the input.

    The condition and the (real or generated) image are concatenated; then
    4 x 4 convolutions with strides 2, 2, ..., 1 and a last 1-filter
    convolution give one logit per patch.  With filters of length 4 each
    logit sees a 70 x 70 pixel patch.

    Returns
    -------
    discriminator : `keras.Model`
        Inputs [condition, image]; output logits (batch, py, px, 1).
    """
    condition = keras.Input((None, None, channels_condition), name="condition")
    image = keras.Input((None, None, channels_image), name="image")
    x = layers.Concatenate(name="pair")([condition, image])
    for level, width in enumerate(filters):
        last = level == len(filters) - 1
        x = layers.Conv2D(width, _KERNEL, strides=1 if last else 2, padding="same",
                          use_bias=level == 0, kernel_initializer=_initializer(seed + level),
                          name=f"patch{level}_conv")(x)
        if level > 0:
            x = layers.BatchNormalization(name=f"patch{level}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"patch{level}_act")(x)
    logits = layers.Conv2D(1, _KERNEL, strides=1, padding="same",
                           kernel_initializer=_initializer(seed + 50), name="logits")(x)
    return keras.Model([condition, image], logits, name=name)


def central_window(images, window):
    """The central ``window`` x ``window`` pixels of images (batch, ny, nx, channels).

    The window starts at pixel (n - window) // 2 of each axis of length n,
    so that for even sides it holds the pixel n // 2 where point sources
    are placed.
    """
    ny, nx = images.shape[1], images.shape[2]
    y0, x0 = (ny - window) // 2, (nx - window) // 2
    return images[:, y0:y0 + window, x0:x0 + window, :]


def window_discriminator(channels_condition, channels_image, filters, image_size, window,
                         seed=0, name="discriminator"):
    """The PSFGAN discriminator: it sees only the central window, with the condition.

    The central ``window`` x ``window`` pixels of the condition and of the
    (real or generated) image, where the point source sits, are
    concatenated and pass through 4 x 4 convolutions of stride 2 (batch
    normalisation after the first, LeakyReLU 0.2) and a linear layer to one
    logit, as in the reference code of Stark et al. (2018).

    Parameters
    ----------
    channels_condition, channels_image : int
        Bands of the condition and of the image.
    filters : sequence of int
        Filters per convolution.
    image_size : int
        Side of the training images.
    window : int
        Side of the central window, at most ``image_size``.
    seed : int
        Seed of the initial weights.

    Returns
    -------
    discriminator : `keras.Model`
        Inputs [condition, image] of shape (batch, image_size, image_size,
        channels); output logits (batch, 1).
    """
    if not 0 < window <= image_size:
        raise InvalidParameterError(f"the window ({window} pixels) must be positive and fit in "
                                    f"the {image_size}-pixel images")
    condition = keras.Input((image_size, image_size, channels_condition), name="condition")
    image = keras.Input((image_size, image_size, channels_image), name="image")
    start = (image_size - window) // 2
    crop = ((start, image_size - window - start),) * 2
    x = layers.Concatenate(name="pair")([
        layers.Cropping2D(crop, name="window_condition")(condition),
        layers.Cropping2D(crop, name="window_image")(image)])
    for level, width in enumerate(filters):
        x = layers.Conv2D(width, _KERNEL, strides=2, padding="same", use_bias=level == 0,
                          kernel_initializer=_initializer(seed + level),
                          name=f"window{level}_conv")(x)
        if level > 0:
            x = layers.BatchNormalization(name=f"window{level}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"window{level}_act")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, kernel_initializer=_initializer(seed + 50), name="logits")(x)
    return keras.Model([condition, image], logits, name=name)
