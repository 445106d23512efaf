# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Exceptions and warnings raised by galaxyml.

Every error galaxyml raises on purpose derives from `GalaxymlError`, and
also from the built-in exception that describes its kind (`OSError` for
unreadable files, `ValueError` for bad values), so that callers can catch
either.  Every warning derives from `GalaxymlWarning`, itself an
`~astropy.utils.exceptions.AstropyUserWarning`.
"""

from astropy import units as u
from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "GalaxymlError",
    "InvalidParameterError",
    "InvalidShapeError",
    "InvalidInputTypeError",
    "MissingFileError",
    "UnitMismatchError",
    "NotBuiltError",
    "FITSReadError",
    "NoImageHDUError",
    "MissingWCSError",
    "UnknownBandError",
    "MixedFieldsError",
    "CutoutOffImageError",
    "InvalidCutoutSizeError",
    "OutputExistsError",
    "OutputLockedError",
    "FieldLimitError",
    "SDSSDataNotFoundError",
    "InvalidDistributionError",
    "InsufficientMemoryError",
    "PSFError",
    "InvalidPSFError",
    "EvenKernelSizeError",
    "DeconvolutionError",
    "NegativeFluxError",
    "PositionOffImageError",
    "NoStarsError",
    "MissingDependencyError",
    "MissingColumnError",
    "WeightsError",
    "QuantityMismatchError",
    "VisibilityReadError",
    "AllFlaggedError",
    "UnknownPolarizationError",
    "InvalidBitWidthError",
    "InvalidSparsityError",
    "ShapeMismatchError",
    "NonFiniteDataError",
    "AntennaTableError",
    "BandMismatchError",
    "ImageTooSmallError",
    "ModelTypeError",
    "StretchMismatchError",
    "TooFewSourcesError",
    "DistributeError",
    "CollectiveDtypeError",
    "NonFloatWeightsError",
    "ByzantineCountError",
    "AggregationConflictError",
    "GalaxymlWarning",
    "NonFinitePixelsWarning",
    "CutoutPartiallyOffImageWarning",
    "DefaultNoiseModelWarning",
    "StretchClippingWarning",
    "NoiseTargetWarning",
]


class GalaxymlError(Exception):
    """Base class of all errors raised by galaxyml."""


class InvalidParameterError(GalaxymlError, ValueError):
    """A parameter's value is outside its allowed range or set of choices."""


class InvalidShapeError(GalaxymlError, ValueError):
    """An array has a shape (or number of dimensions) that the operation cannot take."""


class InvalidInputTypeError(GalaxymlError, TypeError):
    """An argument is of a type galaxyml cannot use there."""


class MissingFileError(GalaxymlError, FileNotFoundError):
    """A file that is needed does not exist."""


class UnitMismatchError(GalaxymlError, u.UnitConversionError):
    """Data are in a unit that cannot be converted to the one needed (for example nanomaggies)."""


class NotBuiltError(GalaxymlError, RuntimeError):
    """An object is used before the step that builds it (for example in a strategy's scope)."""


class FITSReadError(GalaxymlError, OSError):
    """A FITS file is truncated, corrupt, or not FITS at all."""


class NoImageHDUError(GalaxymlError, ValueError):
    """A FITS file has no two-dimensional image HDU where one is needed."""


class MissingWCSError(GalaxymlError, ValueError):
    """An image has no celestial WCS where one is needed."""


class UnknownBandError(GalaxymlError, ValueError):
    """A band (filter) name is not known or not available."""


class MixedFieldsError(GalaxymlError, ValueError):
    """Images of different fields were combined where one field is needed."""


class CutoutOffImageError(GalaxymlError, ValueError):
    """A cutout does not overlap the image at all."""


class InvalidCutoutSizeError(GalaxymlError, ValueError):
    """A cutout size is zero, negative, or not understood."""


class OutputExistsError(GalaxymlError, FileExistsError):
    """An output would overwrite an existing file or one of its own inputs."""


class OutputLockedError(GalaxymlError, BlockingIOError):
    """An output directory is in use by another galaxyml run."""


class FieldLimitError(GalaxymlError, RuntimeError):
    """A field of a batch took more time or memory than the batch allows."""


class SDSSDataNotFoundError(MissingFileError):
    """SDSS files are neither in the local data directories nor downloadable."""


class InvalidDistributionError(GalaxymlError, ValueError):
    """A probability density or a power spectrum is negative, NaN or not normalisable."""


class InsufficientMemoryError(GalaxymlError, MemoryError):
    """A computation would need more memory than the machine has (checked beforehand)."""


class PSFError(GalaxymlError, ValueError):
    """Base class of problems with a point-spread function."""


class InvalidPSFError(PSFError):
    """A PSF cannot be normalised: its sum is zero or negative, or it holds NaN or inf."""


class EvenKernelSizeError(PSFError):
    """A kernel or PSF size is even where an odd size (a central pixel) is required."""


class NoStarsError(PSFError):
    """Too few usable stars were found in an image to measure or build a PSF."""


class DeconvolutionError(GalaxymlError, ValueError):
    """The target PSF is sharper than the image's own: that is deconvolution, not degradation."""


class NegativeFluxError(GalaxymlError, ValueError):
    """A flux or a contrast that must be positive is negative, zero or not finite."""


class PositionOffImageError(GalaxymlError, ValueError):
    """A position lies outside the image."""


class InvalidBitWidthError(GalaxymlError, ValueError):
    """A bit width that galaxyml cannot quantize to or pack (it packs 1, 2, 4 and 8 bits)."""


class InvalidSparsityError(GalaxymlError, ValueError):
    """A sparsity level that is not positive or exceeds the number of unknowns."""


class ShapeMismatchError(GalaxymlError, ValueError):
    """Arrays that must agree in shape (a matrix and its data) do not."""


class NonFiniteDataError(GalaxymlError, ValueError):
    """Data hold NaN or infinite values where every value must be finite."""


class AntennaTableError(GalaxymlError, ValueError):
    """An antenna table lacks a column or lists two antennas at the same position."""


class BandMismatchError(GalaxymlError, ValueError):
    """An image's bands differ from those a model was trained on."""


class ImageTooSmallError(GalaxymlError, ValueError):
    """An image is smaller than the smallest a network accepts, even after padding."""


class ModelTypeError(GalaxymlError, ValueError):
    """A model file holds a different kind of galaxyml model (or none)."""


class StretchMismatchError(GalaxymlError, ValueError):
    """Training data are stretched differently from the model that is to learn from them."""


class TooFewSourcesError(GalaxymlError, ValueError):
    """Too few sources (galaxies, a host) were found or selected for the operation."""


class MissingDependencyError(GalaxymlError, ImportError):
    """An optional package that the function called needs is not installed."""


class MissingColumnError(GalaxymlError, KeyError):
    """A catalogue lacks a column that is needed."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(GalaxymlError, ValueError):
    """Weights that cannot be loaded into the network they are given for."""


class QuantityMismatchError(GalaxymlError, AttributeError):
    """Light curves asked for a quantity they do not hold (Eddington ratios of fluxes)."""


class VisibilityReadError(GalaxymlError, OSError):
    """A visibility file (uvfits, Measurement Set) that cannot be read: corrupt, truncated or
    not visibilities."""


class AllFlaggedError(GalaxymlError, ValueError):
    """Every visibility of a selection is flagged, so there is nothing to image."""


class UnknownPolarizationError(GalaxymlError, ValueError):
    """A polarisation that the visibilities do not hold (or cannot form, for Stokes I)."""


class DistributeError(GalaxymlError, ValueError):
    """Base class of problems with distributed gradient aggregation."""


class CollectiveDtypeError(DistributeError, TypeError):
    """A strategy's collectives cannot carry the packed words a gradient exchange sends."""


class NonFloatWeightsError(DistributeError, TypeError):
    """A model to be trained by sign votes has trainable weights that are not floats."""


class ByzantineCountError(DistributeError):
    """A simulated Byzantine count is negative, or half the replicas or more."""


class AggregationConflictError(DistributeError):
    """An aggregator is paired with an optimizer that aggregates gradients itself."""


class GalaxymlWarning(AstropyUserWarning):
    """Base class of all warnings issued by galaxyml."""


class NonFinitePixelsWarning(GalaxymlWarning):
    """An image contains NaN or infinite pixels; they have been masked."""


class CutoutPartiallyOffImageWarning(GalaxymlWarning):
    """A cutout extends beyond the image; the missing pixels are masked."""


class DefaultNoiseModelWarning(GalaxymlWarning):
    """SDSS gain and dark variance were taken from the default table."""


class StretchClippingWarning(GalaxymlWarning):
    """Pixels outside a stretch's clipping range were clipped; the inverse cannot restore them."""


class NoiseTargetWarning(GalaxymlWarning):
    """An image is already noisier than the requested noise level; no noise was added."""
