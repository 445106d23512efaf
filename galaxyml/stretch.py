# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Invertible stretches between nanomaggies and the range a network sees.

The GAN papers feed their networks asinh-stretched, clipped images.  Here
each stretch is an `astropy.visualization` stretch with an exact inverse,
so that network outputs go back to nanomaggies; pixels outside the
clipping range are reported, because clipping is the one step that cannot
be undone.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.visualization import AsinhStretch, LinearStretch

from .exceptions import InvalidParameterError, StretchClippingWarning

__all__ = ["ImageStretch", "GalaxyGANStretch", "PSFGANStretch", "stretch_from_dict"]


class ImageStretch:
    """A clipping range followed by an invertible `astropy.visualization` stretch.

    Parameters
    ----------
    clip_min, clip_max : float
        Clipping range in nanomaggies.
    stretch : `~astropy.visualization.BaseStretch`
        Applied to the clipped values; must have an ``inverse``.
    """

    def __init__(self, clip_min, clip_max, stretch):
        _check_range(clip_min, clip_max)
        self.clip_min = float(clip_min)
        self.clip_max = float(clip_max)
        self.stretch = stretch

    def __repr__(self):
        return f"<{type(self).__name__} {self.to_dict()}>"

    def out_of_range(self, data):
        """True where ``data`` (nanomaggies) lies outside the clipping range."""
        data = _as_nanomaggies(data)
        return (data < self.clip_min) | (data > self.clip_max)

    def __call__(self, data, warn=True):
        """Stretch ``data`` (nanomaggies, or a flux Quantity) after clipping it.

        Parameters
        ----------
        data : array-like or `~astropy.units.Quantity`
            Image in nanomaggies.
        warn : bool
            Issue a `~galaxyml.exceptions.StretchClippingWarning` naming how
            many pixels were clipped (see `out_of_range` to find them).

        Returns
        -------
        stretched : `~numpy.ndarray`
            float64.
        """
        data = _as_nanomaggies(data)
        outside = self.out_of_range(data)
        if warn and outside.any():
            warnings.warn(f"{int(outside.sum())} of {outside.size} pixels "
                          f"({outside.mean():.2%}) lie outside [{self.clip_min:g}, "
                          f"{self.clip_max:g}] nmgy and were clipped; the inverse returns the "
                          "clipping limits there", StretchClippingWarning)
        clipped = np.clip(data, self.clip_min, self.clip_max)
        return self.stretch(clipped, clip=False)

    def inverse(self, stretched):
        """Nanomaggies from stretched values (exact inside the clipping range)."""
        return self.stretch.inverse(np.asarray(stretched, dtype=float), clip=False)

    @property
    def network_range(self):
        """(low, high): the stretched values a network's [-1, 1] stands for.

        [0, 1], widened to hold the stretched clipping limits: GalaxyGAN's
        stretch maps its range onto [0, 1]; PSFGAN's maps ``clip_min`` (a
        negative flux) below 0, and a tanh output must reach it too.
        """
        limits = self.stretch(np.array([self.clip_min, self.clip_max]), clip=False)
        return min(0.0, float(limits[0])), max(1.0, float(limits[1]))

    def to_dict(self):
        """Parameters that recreate this stretch with `stretch_from_dict`."""
        raise NotImplementedError

    def inverse_tensor(self, stretched):
        """`inverse` written with `keras.ops`, for losses in nanomaggies."""
        raise NotImplementedError


class GalaxyGANStretch(ImageStretch):
    """The GalaxyGAN stretch (Schawinski et al. 2017).

    Clip to [``clip_min``, ``clip_max``] nanomaggies, rescale linearly to
    [0, 1], then y = asinh(``softening`` x) / 3.

    Parameters
    ----------
    clip_min, clip_max : float
        The paper's -0.1 and 4 nanomaggies by default.
    softening : float
        The paper's 10.

    Examples
    --------
    >>> import numpy as np
    >>> from galaxyml.stretch import GalaxyGANStretch
    >>> stretch = GalaxyGANStretch()
    >>> values = np.array([-0.1, 0.0, 1.0, 4.0])
    >>> np.round(stretch(values), 4)
    array([0.    , 0.0805, 0.571 , 0.9994])
    >>> np.allclose(stretch.inverse(stretch(values)), values)
    True
    """

    def __init__(self, clip_min=-0.1, clip_max=4.0, softening=10.0):
        self.softening = float(softening)
        width = clip_max - clip_min
        # astropy's AsinhStretch(a) is asinh(x / a) / asinh(1 / a); rescale to asinh(s x) / 3.
        stretch = (LinearStretch(slope=np.arcsinh(self.softening) / 3)
                   + AsinhStretch(a=1 / self.softening)
                   + LinearStretch(slope=1 / width, intercept=-clip_min / width))
        super().__init__(clip_min, clip_max, stretch)

    def inverse_tensor(self, stretched):
        from keras import ops  # here: the stretches themselves need no TensorFlow

        width = self.clip_max - self.clip_min
        return ops.sinh(3.0 * stretched) * (width / self.softening) + self.clip_min

    def to_dict(self):
        return {"name": "galaxygan", "clip_min": self.clip_min, "clip_max": self.clip_max,
                "softening": self.softening}


class PSFGANStretch(ImageStretch):
    """The PSFGAN stretch (Stark et al. 2018).

    Clip to [``clip_min``, ``clip_max``] nanomaggies, then
    y = asinh(``softening`` x) / asinh(``softening`` clip_max).

    Parameters
    ----------
    clip_max : float
        Upper clipping limit; the paper chose it per data set.
    clip_min : float
        The paper's -0.1 nanomaggies by default.
    softening : float
        The paper's 50.
    """

    def __init__(self, clip_max, clip_min=-0.1, softening=50.0):
        _check_range(clip_min, clip_max)
        if not clip_max > 0:
            raise InvalidParameterError(f"clip_max must be positive, not {clip_max}")
        self.softening = float(softening)
        stretch = (AsinhStretch(a=1 / (self.softening * clip_max))
                   + LinearStretch(slope=1 / clip_max))
        super().__init__(clip_min, clip_max, stretch)

    def inverse_tensor(self, stretched):
        from keras import ops

        scale = float(np.arcsinh(self.softening * self.clip_max))
        return ops.sinh(scale * stretched) / self.softening

    def to_dict(self):
        return {"name": "psfgan", "clip_min": self.clip_min, "clip_max": self.clip_max,
                "softening": self.softening}


_STRETCHES = {"galaxygan": GalaxyGANStretch, "psfgan": PSFGANStretch}


def stretch_from_dict(params):
    """The stretch described by ``params`` (as from ``to_dict``)."""
    params = dict(params)
    name = params.pop("name", None)
    if name not in _STRETCHES:
        raise InvalidParameterError(f"unknown stretch {name!r}; known: {sorted(_STRETCHES)}")
    return _STRETCHES[name](**params)


def _check_range(clip_min, clip_max):
    if not clip_max > clip_min:
        raise InvalidParameterError(f"clip_max ({clip_max}) must exceed clip_min ({clip_min})")


def _as_nanomaggies(data):
    if isinstance(data, u.Quantity):
        return data.to_value(u.nanomaggy).astype(float)
    return np.asarray(data, dtype=float)
