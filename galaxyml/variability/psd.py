# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Power spectral densities of AGN variability."""

import numpy as np
from astropy import units as u

from ..exceptions import InvalidDistributionError, InvalidInputTypeError

__all__ = ["PSD", "BendingPowerLawPSD", "PowerLawPSD", "BrokenPowerLawPSD", "CallablePSD"]


class PSD:
    """Base class: a one-sided power spectral density P(nu).

    Calling a PSD with frequencies (a `~astropy.units.Quantity`, or floats in
    Hz) returns the power, in arbitrary units per Hz.  Only its shape matters
    to the simulations, which normalise the variance themselves.
    """

    def __call__(self, frequency):
        nu = u.Quantity(frequency, u.Hz).to_value(u.Hz)
        power = np.asarray(self._evaluate(nu), dtype=float)
        if np.any(~np.isfinite(power)) or np.any(power < 0):
            bad = nu[~(np.isfinite(power) & (power >= 0))] if np.ndim(nu) else nu
            raise InvalidDistributionError(f"{type(self).__name__}: the power is negative or "
                                           f"not finite at {np.ravel(bad)[:3]} Hz")
        return power

    def _evaluate(self, nu):
        raise NotImplementedError


class BendingPowerLawPSD(PSD):
    """P(nu) = A nu^-a_low / (1 + (nu/nu_bend)^(a_high - a_low)) + c.

    Defaults are Sartori et al.'s fiducial bend at 2e-10 Hz (about 158 yr)
    between slopes 1 and 2.
    """

    def __init__(self, amplitude=1.0, nu_bend=2e-10 * u.Hz, a_low=1.0, a_high=2.0, constant=0.0):
        self.amplitude, self.a_low, self.a_high, self.constant = amplitude, a_low, a_high, constant
        self.nu_bend = u.Quantity(nu_bend, u.Hz)

    def _evaluate(self, nu):
        bend = self.nu_bend.to_value(u.Hz)
        with np.errstate(divide="ignore", over="ignore"):
            # Written relative to the bend, so that tiny frequencies do not overflow.
            x = nu / bend
            return (self.amplitude * bend ** -self.a_low * x ** -self.a_low
                    / (1 + x ** (self.a_high - self.a_low)) + self.constant)


class PowerLawPSD(PSD):
    """P(nu) = A (nu / 1 Hz)^-index + c."""

    def __init__(self, amplitude=1.0, index=2.0, constant=0.0):
        self.amplitude, self.index, self.constant = amplitude, index, constant

    def _evaluate(self, nu):
        with np.errstate(divide="ignore"):
            return self.amplitude * nu ** -self.index + self.constant


class BrokenPowerLawPSD(PSD):
    """Slope ``a_low`` below ``nu_break`` and ``a_high`` above, continuous at the break."""

    def __init__(self, amplitude=1.0, nu_break=2e-10 * u.Hz, a_low=1.0, a_high=2.0):
        self.amplitude, self.a_low, self.a_high = amplitude, a_low, a_high
        self.nu_break = u.Quantity(nu_break, u.Hz)

    def _evaluate(self, nu):
        x = nu / self.nu_break.to_value(u.Hz)
        with np.errstate(divide="ignore"):
            return self.amplitude * np.where(x < 1, x ** -self.a_low, x ** -self.a_high)


class CallablePSD(PSD):
    """A user PSD: ``function(nu_in_hz) -> power``."""

    def __init__(self, function):
        if not callable(function):
            raise InvalidInputTypeError("CallablePSD needs a function of the frequency in Hz")
        self.function = function

    def _evaluate(self, nu):
        return self.function(nu)
