# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Eddington-ratio distribution functions (ERDFs).

An ERDF is the distribution of log10 of the Eddington ratio lambda,
dN/dlog(lambda).  Every ERDF here is tabulated once on a fine grid in
log(lambda) over its support, normalised there, and sampled by inverse CDF:
no rejection loop, the same cost for any shape.
"""

import numpy as np

from ..exceptions import InvalidDistributionError

__all__ = ["ERDF", "BrokenPowerLawERDF", "LogNormalERDF", "SchechterERDF", "TabulatedERDF"]


class ERDF:
    """Base class: a distribution of log10(Eddington ratio) on a finite support.

    Subclasses define ``_density(log_lambda)``, proportional to
    dN/dlog(lambda).

    Parameters
    ----------
    log_lambda_min, log_lambda_max : float
        Support in log10(lambda) (the fiducial range is 1e-5 to 10).
    n_grid : int
        Grid points for the tabulated CDF.
    """

    def __init__(self, log_lambda_min=-5.0, log_lambda_max=1.0, n_grid=8193):
        if not log_lambda_max > log_lambda_min:
            raise InvalidDistributionError(
                f"the support must have log_lambda_max > log_lambda_min, not "
                f"[{log_lambda_min}, {log_lambda_max}]")
        self.log_lambda_min = float(log_lambda_min)
        self.log_lambda_max = float(log_lambda_max)
        self._grid = np.linspace(self.log_lambda_min, self.log_lambda_max, n_grid)
        density = np.asarray(self._density(self._grid), dtype=float)
        if density.shape != self._grid.shape or not np.all(np.isfinite(density)):
            raise InvalidDistributionError(f"{type(self).__name__}: the density is not finite "
                                           "everywhere on its support")
        if np.any(density < 0):
            raise InvalidDistributionError(f"{type(self).__name__}: the density is negative at "
                                           f"log(lambda) = {self._grid[density < 0][0]:.3g}")
        steps = 0.5 * (density[1:] + density[:-1]) * np.diff(self._grid)
        total = steps.sum()
        if not total > 0:
            raise InvalidDistributionError(f"{type(self).__name__}: the density integrates to "
                                           f"{total} on its support and cannot be normalised")
        self._density_grid = density / total
        cumulative = np.cumsum(steps)
        self._cdf_grid = np.concatenate([[0.0], cumulative / cumulative[-1]])

    def _density(self, log_lambda):
        raise NotImplementedError

    def pdf(self, log_lambda):
        """Normalised dN/dlog(lambda) at ``log_lambda`` (zero outside the support)."""
        log_lambda = np.asarray(log_lambda, dtype=float)
        return np.interp(log_lambda, self._grid, self._density_grid, left=0.0, right=0.0)

    def cdf(self, log_lambda):
        """Fraction of the distribution below ``log_lambda``."""
        return np.interp(np.asarray(log_lambda, dtype=float), self._grid, self._cdf_grid,
                         left=0.0, right=1.0)

    def ppf(self, quantile):
        """log10(lambda) at a quantile (inverse of `cdf`)."""
        # Flat parts of the CDF (zero density) would make the inverse ambiguous;
        # keeping the first grid point of each CDF value makes it a function.
        cdf, first = np.unique(self._cdf_grid, return_index=True)
        return np.interp(np.asarray(quantile, dtype=float), cdf, self._grid[first])

    def sample(self, size, seed=None, dtype=np.float64):
        """Draw Eddington ratios (not their logarithms).

        Parameters
        ----------
        size : int or tuple of int
            Shape of the result.
        seed : int or `numpy.random.Generator`, optional
            All randomness goes through this generator.
        dtype : dtype
            ``float64`` or ``float32`` (half the memory).
        """
        rng = np.random.default_rng(seed)
        return (10.0 ** self.ppf(rng.random(size))).astype(dtype, copy=False)

    def __repr__(self):
        return (f"<{type(self).__name__} support=[1e{self.log_lambda_min:g}, "
                f"1e{self.log_lambda_max:g}]>")


class BrokenPowerLawERDF(ERDF):
    """Broken power law, dN/dlog(lambda) ~ 1 / [(lambda/lambda*)^delta1 + (lambda/lambda*)^delta2].

    Defaults are the fiducial ERDF of Sartori et al. (2018): delta1 = 0.47,
    delta2 = 2.53, log(lambda*) = -1.84, on 1e-5 <= lambda <= 10.
    """

    def __init__(self, delta1=0.47, delta2=2.53, log_lambda_star=-1.84, log_lambda_min=-5.0,
                 log_lambda_max=1.0, n_grid=8193):
        self.delta1, self.delta2, self.log_lambda_star = delta1, delta2, log_lambda_star
        super().__init__(log_lambda_min, log_lambda_max, n_grid)

    def _density(self, log_lambda):
        ratio = 10.0 ** (log_lambda - self.log_lambda_star)
        return 1.0 / (ratio ** self.delta1 + ratio ** self.delta2)


class LogNormalERDF(ERDF):
    """Log-normal in lambda: a Gaussian in log10(lambda).

    Defaults: log(lambda*) = -3.25 and sigma = 0.64 dex (Sartori et al. 2018).
    """

    def __init__(self, log_lambda_star=-3.25, sigma=0.64, log_lambda_min=-5.0,
                 log_lambda_max=1.0, n_grid=8193):
        if not sigma > 0:
            raise InvalidDistributionError(f"sigma must be positive, not {sigma}")
        self.log_lambda_star, self.sigma = log_lambda_star, sigma
        super().__init__(log_lambda_min, log_lambda_max, n_grid)

    def _density(self, log_lambda):
        return np.exp(-0.5 * ((log_lambda - self.log_lambda_star) / self.sigma) ** 2)


class SchechterERDF(ERDF):
    """Schechter form, dN/dlog(lambda) ~ (lambda/lambda*)^alpha exp(-lambda/lambda*)."""

    def __init__(self, log_lambda_star=-1.0, alpha=-0.5, log_lambda_min=-5.0,
                 log_lambda_max=1.0, n_grid=8193):
        self.log_lambda_star, self.alpha = log_lambda_star, alpha
        super().__init__(log_lambda_min, log_lambda_max, n_grid)

    def _density(self, log_lambda):
        ratio = 10.0 ** (log_lambda - self.log_lambda_star)
        return ratio ** self.alpha * np.exp(-ratio)


class TabulatedERDF(ERDF):
    """A user ERDF: a callable of log10(lambda), or tabulated values.

    Parameters
    ----------
    density : callable or array-like
        dN/dlog(lambda) up to a constant: a function of log10(lambda), or
        values at ``log_lambda`` (linearly interpolated).
    log_lambda : array-like, optional
        Increasing log10(lambda) of tabulated values; also sets the support.
    log_lambda_min, log_lambda_max : float
        Support, for a callable.
    """

    def __init__(self, density, log_lambda=None, log_lambda_min=-5.0, log_lambda_max=1.0,
                 n_grid=8193):
        if callable(density):
            self._function = density
        else:
            if log_lambda is None:
                raise InvalidDistributionError("tabulated values need their log_lambda")
            x, y = np.asarray(log_lambda, float), np.asarray(density, float)
            if x.shape != y.shape or x.ndim != 1 or x.size < 2 or np.any(np.diff(x) <= 0):
                raise InvalidDistributionError("log_lambda must increase strictly and match "
                                               "the tabulated values in length")
            self._function = lambda grid: np.interp(grid, x, y)
            log_lambda_min, log_lambda_max = x[0], x[-1]
        super().__init__(log_lambda_min, log_lambda_max, n_grid)

    def _density(self, log_lambda):
        return self._function(log_lambda)
