# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Models of an observed light curve: its flux distribution and power spectrum.

The flux distribution (PDF) is fitted by maximum likelihood; the power
spectral density (PSD) by PSRESP (Uttley, McHardy and Papadakis 2002): the
observed periodogram, binned in log frequency, is compared with those of
light curves simulated with the model on the observed sampling, which
accounts for red-noise leakage, aliasing and gaps.  `LightCurveModel.simulate`
then draws light curves with both, on the observed sampling, by the method
of Emmanoulopoulos et al. (2013).
"""

import copy
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.table import QTable, Table
import scipy.fft
from scipy import optimize, special, stats

from ..exceptions import InvalidParameterError, InvalidShapeError, MissingColumnError
from .psd import BendingPowerLawPSD, PowerLawPSD
from .simulate import LightCurves, emmanoulopoulos, timmer_koenig

__all__ = ["read_light_curve", "FluxPDF", "fit_pdf", "PSDFit", "fit_psd", "LightCurveModel",
           "fit_light_curve"]

_MIN_POINTS = 32
_PDF_MODELS = ("gamma", "lognormal", "mixture")
_PSD_MODELS = ("bending_power_law", "power_law")


# ---------------------------------------------------------------------- reading

def read_light_curve(table_or_path, time_unit=u.s, format=None):
    """An observed light curve as a `~astropy.table.QTable` of ``time``, ``flux``, ``error``.

    Parameters
    ----------
    table_or_path : `~astropy.table.Table` or path
        A table, or a file any astropy reader understands (``format``
        chooses one; whitespace-separated text by default for files that
        are not FITS, ECSV or VOTable).  Its columns named ``time``,
        ``flux`` and ``error`` (or ``flux_err``), else its first three.
    time_unit : `~astropy.units.Unit`
        Unit of a time column that has none (seconds by default).
    format : str, optional
        The astropy reader, for example ``"ascii.ecsv"``.

    Returns
    -------
    table : `~astropy.table.QTable`
        Sorted by time; ``time`` a Quantity, ``flux`` and ``error`` in the
        file's flux unit (dimensionless where it has none).

    Raises
    ------
    MissingColumnError
        Fewer than three columns.
    InvalidParameterError
        Non-finite values, errors that are not positive, repeated times, or
        fewer than 32 points.
    """
    table = table_or_path
    if not isinstance(table, Table):
        table = Table.read(table_or_path, format=format or _default_format(table_or_path))
    names = _columns(table)
    time, flux, error = (u.Quantity(table[name]) for name in names)
    if time.unit == u.dimensionless_unscaled:
        time = time.value * u.Unit(time_unit)
    unit = flux.unit if flux.unit != u.dimensionless_unscaled else error.unit
    flux, error = flux.value * unit, error.to_value(unit) * unit
    _check_values(time, flux, error)
    order = np.argsort(time)
    return QTable({"time": time[order], "flux": flux[order], "error": error[order]},
                  meta={"source": str(table_or_path) if not isinstance(table_or_path, Table)
                        else table.meta.get("source", "")})


def _default_format(path):
    suffix = str(path).lower()
    if suffix.endswith((".fits", ".fit", ".fits.gz", ".ecsv", ".xml", ".vot", ".hdf5", ".h5")):
        return None
    return "ascii.basic" if not suffix.endswith(".csv") else "ascii.csv"


def _columns(table):
    lower = {name.lower(): name for name in table.colnames}
    error = lower.get("error") or lower.get("flux_err") or lower.get("err")
    if "time" in lower and "flux" in lower and error:
        return lower["time"], lower["flux"], error
    if len(table.colnames) < 3:
        raise MissingColumnError(f"a light curve needs time, flux and error columns; the table "
                                 f"has {table.colnames}")
    return table.colnames[:3]


def _check_values(time, flux, error):
    if len(time) < _MIN_POINTS:
        raise InvalidParameterError(f"a light curve needs at least {_MIN_POINTS} points to fit, "
                                    f"not {len(time)}")
    for name, values in (("time", time), ("flux", flux), ("error", error)):
        if not np.all(np.isfinite(values)):
            raise InvalidParameterError(f"the light curve's {name} has non-finite values")
    if np.any(error <= 0):
        raise InvalidParameterError("the light curve's errors must be positive")
    if len(np.unique(time)) != len(time):
        raise InvalidParameterError("the light curve has repeated times")


# ---------------------------------------------------------------------- sampling

@dataclass
class _Sampling:
    """Where the observed points fall on a regular grid of step ``dt``."""

    dt: u.Quantity
    index: np.ndarray  # grid index of each observed point
    n_grid: int

    @classmethod
    def of(cls, time, dt=None):
        offsets = (time - time[0]).to(u.s)
        dt = np.median(np.diff(offsets)) if dt is None else u.Quantity(dt, u.s)
        index = np.round((offsets / dt).to_value(u.one)).astype(int)
        if len(np.unique(index)) != len(index):
            raise InvalidParameterError(f"two observations fall in one {dt:.4g} step: give a "
                                        "smaller dt")
        return cls(dt.to(u.s), index, int(index[-1]) + 1)

    def frequencies(self):
        """k / (n_grid dt), k = 1 ... n_grid / 2, in Hz."""
        n = self.n_grid
        return np.arange(1, n // 2 + 1) / (n * self.dt.to_value(u.s))


def _fractional_periodogram(sampling, flux):
    """Periodogram of flux / mean (rms-normalised, per Hz) of rows of ``flux`` at the observed
    points: 2 dt |sum_j y_j exp(-2 pi i k n_j / N)|^2 / n at the grid's frequencies k / (N dt),
    the discrete Fourier periodogram of unevenly sampled data (Deeming 1975; zeros in the
    gaps), which is the FFT periodogram where the sampling has none."""
    flux = np.atleast_2d(flux)
    relative = flux / flux.mean(axis=-1, keepdims=True)
    on_grid = np.zeros((len(flux), sampling.n_grid))
    on_grid[:, sampling.index] = relative - relative.mean(axis=-1, keepdims=True)
    spectrum = scipy.fft.rfft(on_grid, axis=-1, workers=-1)[:, 1:sampling.n_grid // 2 + 1]
    return 2 * sampling.dt.to_value(u.s) * np.abs(spectrum) ** 2 / len(sampling.index)


# ---------------------------------------------------------------------- PDF

class FluxPDF:
    """A flux distribution: gamma, log-normal, or a mixture of the two.

    The gamma has ``shape`` k and ``scale`` theta; the log-normal ``sigma``
    (of the natural log) and ``median``; the mixture both, and ``weight``,
    the gamma's share.  It is what `~galaxyml.variability.emmanoulopoulos`
    needs of a distribution (`sample`), so it takes an ERDF's place there.

    Parameters
    ----------
    model : {'gamma', 'lognormal', 'mixture'}
    params : dict
        The parameters, in the flux's units where they have any.
    errors : dict, optional
        Their 1-sigma errors.
    log_likelihood : float, optional
        Of the fitted data.
    """

    def __init__(self, model, params, errors=None, log_likelihood=None):
        if model not in _PDF_MODELS:
            raise InvalidParameterError(f"unknown PDF model {model!r}; choose from {_PDF_MODELS}")
        self.model, self.params = model, dict(params)
        self.errors = dict(errors or {})
        self.log_likelihood = log_likelihood

    def __repr__(self):
        values = ", ".join(f"{name}={value:.4g}" for name, value in self.params.items())
        return f"FluxPDF({self.model}: {values})"

    @property
    def n_params(self):
        return len(self.params)

    @property
    def aic(self):
        """Akaike's information criterion of the fit, 2 k - 2 ln L."""
        return 2 * self.n_params - 2 * self.log_likelihood

    def _components(self):
        """[(weight, frozen scipy distribution)]."""
        p = self.params
        parts = []
        if self.model in ("gamma", "mixture"):
            parts.append((p.get("weight", 1.0), stats.gamma(p["shape"], scale=p["scale"])))
        if self.model in ("lognormal", "mixture"):
            parts.append((1 - p.get("weight", 0.0),
                          stats.lognorm(p["sigma"], scale=p["median"])))
        return parts

    def logpdf(self, flux):
        """Natural log of the probability density at ``flux`` (written out rather than
        through scipy.stats, whose per-call set-up dominates a likelihood fit)."""
        x = np.asarray(flux, dtype=float)
        p = self.params
        with np.errstate(divide="ignore", invalid="ignore"):
            log_x = np.log(x)
            if self.model in ("gamma", "mixture"):
                k, theta = p["shape"], p["scale"]
                gamma = (k - 1) * log_x - x / theta - k * np.log(theta) - special.gammaln(k)
            if self.model in ("lognormal", "mixture"):
                sigma = p["sigma"]
                lognormal = (-log_x - np.log(sigma * np.sqrt(2 * np.pi))
                             - (log_x - np.log(p["median"])) ** 2 / (2 * sigma ** 2))
        if self.model == "gamma":
            return gamma
        if self.model == "lognormal":
            return lognormal
        weight = p["weight"]
        return np.logaddexp(np.log(weight) + gamma, np.log1p(-weight) + lognormal)

    def pdf(self, flux):
        """Probability density at ``flux``."""
        return np.exp(self.logpdf(flux))

    def mean(self):
        return sum(weight * part.mean() for weight, part in self._components())

    def std(self):
        second = sum(weight * (part.var() + part.mean() ** 2) for weight, part in
                     self._components())
        return float(np.sqrt(second - self.mean() ** 2))

    def sample(self, size, seed=None, dtype=np.float64):
        """Random fluxes of shape ``size`` (each from the gamma with probability ``weight``)."""
        rng = np.random.default_rng(seed)
        parts = self._components()
        draws = parts[0][1].rvs(size=size, random_state=rng)
        if len(parts) == 2:
            other = parts[1][1].rvs(size=size, random_state=rng)
            draws = np.where(rng.random(size) < parts[0][0], draws, other)
        return draws.astype(dtype)


def _pdf_from_vector(model, vector):
    """FluxPDF from unconstrained parameters: logs of the positive ones, logit of weight."""
    positive = np.exp(vector)
    if model == "gamma":
        return FluxPDF(model, {"shape": positive[0], "scale": positive[1]})
    if model == "lognormal":
        return FluxPDF(model, {"sigma": positive[0], "median": positive[1]})
    return FluxPDF(model, {"weight": special.expit(vector[0]), "shape": positive[1],
                           "scale": positive[2], "sigma": positive[3], "median": positive[4]})


def _pdf_starts(model, flux):
    """Starting vectors: the method of moments for each family; several weights."""
    mean, var = flux.mean(), flux.var()
    gamma = np.log([mean ** 2 / var, var / mean])
    lognormal = np.log([np.log(flux).std(), np.exp(np.log(flux).mean())])
    if model == "gamma":
        return [gamma]
    if model == "lognormal":
        return [lognormal]
    return [np.concatenate([[special.logit(w)], gamma, lognormal]) for w in (0.2, 0.5, 0.8)]


def fit_pdf(flux, model="mixture"):
    """Fit a flux distribution by maximum likelihood.

    Parameters
    ----------
    flux : array or `~astropy.units.Quantity`
        Positive fluxes.
    model : {'mixture', 'gamma', 'lognormal'}
        The family; ``mixture`` (a gamma plus a log-normal) is DELCgen's
        default.

    Returns
    -------
    pdf : `FluxPDF`
        With ``errors`` from the inverse Hessian of the likelihood.  They
        treat the fluxes as independent draws, which is what the E13
        simulations assume of them too.
    """
    values = np.asarray(u.Quantity(flux).value, dtype=float).ravel()
    if model not in _PDF_MODELS:
        raise InvalidParameterError(f"unknown PDF model {model!r}; choose from {_PDF_MODELS}")
    if values.size < _MIN_POINTS or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InvalidParameterError(f"the {model} PDF needs at least {_MIN_POINTS} positive, "
                                    "finite fluxes")

    def negative_log_likelihood(vector):
        log_density = _pdf_from_vector(model, vector).logpdf(values)
        return -np.sum(log_density) if np.all(np.isfinite(log_density)) else np.inf

    best = min((optimize.minimize(negative_log_likelihood, start, method="Nelder-Mead",
                                  options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6})
                for start in _pdf_starts(model, values)), key=lambda fit: fit.fun)
    pdf = _pdf_from_vector(model, best.x)
    pdf.log_likelihood = -best.fun
    pdf.errors = _hessian_errors(model, best.x, negative_log_likelihood)
    return pdf


def _hessian_errors(model, vector, negative_log_likelihood):
    """1-sigma errors of the natural parameters from the likelihood's curvature."""
    covariance = _inverse_hessian(negative_log_likelihood, vector)
    names = list(_pdf_from_vector(model, vector).params)
    jacobian = _natural_jacobian(model, vector)
    variances = np.diag(jacobian @ covariance @ jacobian.T)
    return {name: float(np.sqrt(v)) if v >= 0 else np.nan for name, v in zip(names, variances)}


def _natural_jacobian(model, vector, step=1e-6):
    def natural(v):
        return np.array(list(_pdf_from_vector(model, v).params.values()))
    base = natural(vector)
    columns = []
    for k in range(len(vector)):
        shifted = vector.copy()
        shifted[k] += step
        columns.append((natural(shifted) - base) / step)
    return np.array(columns).T


def _inverse_hessian(function, x, step=1e-3):
    """Inverse of the central finite-difference Hessian of ``function`` at ``x`` (NaN where
    the Hessian is singular)."""
    n = len(x)
    hessian = np.empty((n, n))
    f0 = function(x)
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * step, np.eye(n)[j] * step
            if i == j:
                value = (function(x + ei) - 2 * f0 + function(x - ei)) / step ** 2
            else:
                value = (function(x + ei + ej) - function(x + ei - ej) - function(x - ei + ej)
                         + function(x - ei - ej)) / (4 * step ** 2)
            hessian[i, j] = hessian[j, i] = value
    try:
        return np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return np.full((n, n), np.nan)


# ---------------------------------------------------------------------- PSD

@dataclass
class PSDFit:
    """A PSD fitted by PSRESP.

    Attributes
    ----------
    psd : `~galaxyml.variability.PSD`
        In (rms / mean)^2 per Hz, its ``constant`` the measurement noise's
        level, 2 dt <error^2> / <flux>^2.
    params, errors : dict
        The fitted parameters and their 1-sigma errors (see `fit_psd`; 0
        for parameters held fixed).
    chi2 : float
        Of the observed binned log periodogram against the simulations' mean.
    probability : float
        PSRESP's goodness of fit: the fraction of simulated light curves
        whose chi-squared against the mean exceeds the observed one (small
        values reject the model).
    frequency, observed, expected, scatter : `~numpy.ndarray`
        The bins' mean frequency (Hz), the observed binned log10 periodogram,
        the simulations' mean and standard deviation.
    """

    psd: object
    params: dict
    errors: dict
    chi2: float
    probability: float
    frequency: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    expected: np.ndarray = field(repr=False)
    scatter: np.ndarray = field(repr=False)
    model: str = "bending_power_law"


# Fitted in log10 for the scales; slopes limited to what red noise can have.
_PSD_PARAMETERS = {"bending_power_law": ("amplitude", "nu_bend", "a_low", "a_high"),
                   "power_law": ("amplitude", "index")}
_LOG_PARAMETERS = ("amplitude", "nu_bend")
_SLOPE_RANGE = (0.0, 5.0)


class _PSDParameters:
    """The fitted model's parameters: which are free, and the fit's internal vector
    (log10 of the scales) to and from a PSD."""

    def __init__(self, model, fixed, constant):
        names = _PSD_PARAMETERS[model]
        unknown = set(fixed) - set(names)
        if unknown:
            raise InvalidParameterError(f"the {model} PSD has no parameter {sorted(unknown)}; "
                                        f"it has {names}")
        self.model, self.constant = model, constant
        self.fixed = {name: self._internal(name, value) for name, value in fixed.items()}
        self.free = [name for name in names if name not in fixed]

    def with_constant(self, constant):
        """The same parameters for another noise level."""
        other = copy.copy(self)
        other.constant = constant
        return other

    @staticmethod
    def _internal(name, value):
        if name in _LOG_PARAMETERS:
            return np.log10(u.Quantity(value, u.Hz).value if name == "nu_bend" else value)
        return float(value)

    def values(self, vector):
        """Natural values of all parameters."""
        internal = {**self.fixed, **dict(zip(self.free, vector))}
        values = {name: 10 ** internal[name] if name in _LOG_PARAMETERS else internal[name]
                  for name in _PSD_PARAMETERS[self.model]}
        if "nu_bend" in values:
            values["nu_bend"] = values["nu_bend"] * u.Hz
        return values

    def in_range(self, vector):
        slopes = [value for name, value in zip(self.free, vector) if name not in _LOG_PARAMETERS]
        return all(_SLOPE_RANGE[0] <= slope <= _SLOPE_RANGE[1] for slope in slopes)

    def psd(self, vector):
        values = self.values(vector)
        if self.model == "bending_power_law":
            return BendingPowerLawPSD(**values, constant=self.constant)
        return PowerLawPSD(**values, constant=self.constant)

    def start(self, psresp):
        """From the binned periodogram: its level at the lowest frequencies, a bend in the
        middle of the band, slopes 1 and 2.5 (2 for a single power law)."""
        log_nu = np.log10(psresp.frequency)
        if self.model == "bending_power_law":
            start = {"amplitude": psresp.observed[0] + log_nu[0], "nu_bend": np.median(log_nu),
                     "a_low": 1.0, "a_high": 2.5}
        else:
            start = {"amplitude": psresp.observed[0] + 2 * log_nu[0], "index": 2.0}
        return np.array([start[name] for name in self.free])

    def errors(self, vector, covariance):
        """1-sigma errors of the natural values (0 for fixed parameters)."""
        values = self.values(vector)
        sigma = dict(zip(self.free, np.sqrt(np.where(np.diag(covariance) >= 0,
                                                     np.diag(covariance), np.nan))))
        errors = {}
        for name, value in values.items():
            s = sigma.get(name, 0.0)
            # log10 parameters: the error of 10^x is 10^x ln(10) sigma_x
            errors[name] = value * np.log(10) * s if name in _LOG_PARAMETERS else s
        return errors


def _without_constant(psd):
    """The red-noise part of a fitted PSD: the noise comes from the errors instead."""
    if isinstance(psd, BendingPowerLawPSD):
        return BendingPowerLawPSD(psd.amplitude, psd.nu_bend, psd.a_low, psd.a_high)
    return PowerLawPSD(psd.amplitude, psd.index)


class _Psresp:
    """PSRESP's ingredients for one light curve: binning, noise level, simulations."""

    def __init__(self, table, sampling, n_bins, n_simulations, red_noise_leak, seed):
        self.sampling, self.n_simulations, self.leak = sampling, n_simulations, red_noise_leak
        self.flux = table["flux"].value
        self.error = table["error"].to_value(table["flux"].unit)
        self.mean = self.flux.mean()
        dt_s = sampling.dt.to_value(u.s)
        self.noise_level = 2 * dt_s * np.mean(self.error ** 2) / self.mean ** 2
        nu = sampling.frequencies()
        edges = np.geomspace(nu[0], nu[-1] * 1.0001, n_bins + 1)
        self.bin_of = np.digitize(nu, edges) - 1
        self.counts = np.bincount(self.bin_of, minlength=n_bins)
        self.filled = self.counts > 0
        self.frequency = 10 ** self._bin(np.log10(nu))
        self.observed = self._binned_log(_fractional_periodogram(sampling, self.flux))[0]
        self.seed = seed

    def _bin(self, values):
        """Means of the last axis of ``values`` in the frequency bins."""
        sums = np.stack([np.bincount(self.bin_of, row, minlength=len(self.counts))
                         for row in np.atleast_2d(values)])
        return (sums[:, self.filled] / self.counts[self.filled]).squeeze()

    def _binned_log(self, power):
        return np.atleast_2d(self._bin(np.log10(np.maximum(power, 1e-300))))

    def simulated_flux(self, psd, n_simulations=None, seed=None):
        """Light curves with ``psd``'s red noise and the observed errors, on the observed
        sampling (the same seed gives the same random numbers)."""
        n = n_simulations or self.n_simulations
        rng = np.random.default_rng(self.seed if seed is None else seed)
        # One long periodic series per curve and a random stretch of it: for
        # light curves this short that is faster than timmer_koenig's own
        # red_noise_leak, which never holds the long series.
        n_grid = self.sampling.n_grid
        long = timmer_koenig(_without_constant(psd), n_grid * self.leak, self.sampling.dt,
                             n_curves=n, seed=rng)
        starts = rng.integers(0, n_grid * (self.leak - 1) + 1, n)
        curves = long[np.arange(n)[:, None], starts[:, None] + self.sampling.index]
        return self.mean * (1 + curves) + self.error * rng.standard_normal(curves.shape)

    def simulated(self, psd, n_simulations=None, seed=None):
        """Binned log periodograms of `simulated_flux`."""
        flux = self.simulated_flux(psd, n_simulations, seed)
        return self._binned_log(_fractional_periodogram(self.sampling, flux))

    def deviance(self, psd):
        """-2 ln L of the observed bins, Gaussian with the simulations' mean and scatter.

        The chi-squared alone would favour models whose simulations scatter
        widely (a steep spectrum leaking huge power into the band); the
        2 ln(scatter) term is the price of that scatter.
        """
        sims = self.simulated(psd)
        mean, std = sims.mean(axis=0), sims.std(axis=0, ddof=1)
        return float(np.sum(((self.observed - mean) / std) ** 2 + 2 * np.log(std)))

    def goodness(self, psd, n_simulations):
        """(chi2, probability, mean, std) with fresh simulations."""
        sims = self.simulated(psd, n_simulations, seed=np.random.default_rng(self.seed).integers(
            2 ** 63))
        mean, std = sims.mean(axis=0), sims.std(axis=0, ddof=1)
        observed = float(np.sum(((self.observed - mean) / std) ** 2))
        simulated = np.sum(((sims - mean) / std) ** 2, axis=1)
        return observed, float(np.mean(simulated >= observed)), mean, std


def fit_psd(table, model="bending_power_law", fixed=None, dt=None, n_bins=20,
            n_simulations=100, red_noise_leak=10, n_bootstrap=20, seed=0):
    """Fit a PSD to an observed light curve by PSRESP (Uttley et al. 2002).

    The observed periodogram of flux / mean (the discrete Fourier one, which
    with gaps includes their window), its log averaged in ``n_bins``
    log-spaced frequency bins, is compared with those of ``n_simulations``
    Timmer-Koenig light curves of the model, simulated ``red_noise_leak``
    times longer (so that power below the lowest frequency leaks in as in
    the data), taken at the observed times, with Gaussian noise of the
    observed errors added.  The chi-squared of the observed bins against the
    simulations' mean and scatter, with the Gaussian likelihood's
    normalisation (so that a model is not preferred for scattering widely),
    is minimised (the same random numbers for every trial, so that it is
    smooth in the parameters); the measurement noise's flat level is fixed
    by the errors rather than fitted.  The errors come from fitting light
    curves simulated from the best fit (``n_bootstrap``); the goodness of fit
    is PSRESP's acceptance probability, from 10 times more simulations.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        As `read_light_curve` returns.
    model : {'bending_power_law', 'power_law'}
        The bending power law has ``amplitude``, ``nu_bend``, ``a_low`` and
        ``a_high``; the power law ``amplitude`` and ``index``.  Slopes are
        kept within [0, 5].
    fixed : dict, optional
        Parameters held at given values, for example ``{"a_low": 1.1}``
        where the light curve is too short to see below the bend.
    dt : `~astropy.units.Quantity`, optional
        The sampling step; by default the median spacing.
    n_bins : int
        Log-frequency bins (empty ones are dropped).
    n_simulations : int
        Light curves per trial; the goodness of fit uses 10 times more.
    red_noise_leak : int
        Length of the simulated curves over the observed span.
    n_bootstrap : int
        Light curves simulated from the best fit (on the observed sampling,
        with the observed errors) and fitted as the data were: the errors
        are half the 16-84 percentile range of those fits.  0 takes them from
        the curvature of -2 ln L instead, which is faster but too small where
        the light curve constrains a parameter weakly.
    seed : int
        Seed of the simulations.

    Returns
    -------
    fit : `PSDFit`
    """
    if model not in _PSD_MODELS:
        raise InvalidParameterError(f"unknown PSD model {model!r}; choose from {_PSD_MODELS}")
    sampling = _Sampling.of(table["time"], dt)
    psresp = _Psresp(table, sampling, n_bins, n_simulations, red_noise_leak, seed)
    parameters = _PSDParameters(model, fixed or {}, psresp.noise_level)
    if psresp.filled.sum() <= len(parameters.free):
        raise InvalidShapeError(f"{psresp.filled.sum()} frequency bins for "
                                f"{len(parameters.free)} parameters: use more bins or a longer "
                                "light curve")

    best = _minimise(psresp, parameters, parameters.start(psresp))
    psd = parameters.psd(best)
    if n_bootstrap:
        errors = _bootstrap_errors(table, psd, psresp, parameters, n_bootstrap, n_bins)
    else:
        covariance = 2 * _inverse_hessian(lambda v: _deviance(psresp, parameters, v), best,
                                          step=0.05)
        errors = parameters.errors(best, covariance)
    chi2_value, probability, mean, std = psresp.goodness(psd, 10 * n_simulations)
    return PSDFit(psd, parameters.values(best), errors, chi2_value, probability,
                  psresp.frequency, psresp.observed, mean, std, model)


def _deviance(psresp, parameters, vector):
    if not parameters.in_range(vector):
        return np.inf
    return psresp.deviance(parameters.psd(vector))


def _minimise(psresp, parameters, start):
    """The free parameters' vector of least deviance (Nelder-Mead)."""
    fit = optimize.minimize(lambda v: _deviance(psresp, parameters, v), start,
                            method="Nelder-Mead",
                            options={"xatol": 0.01, "fatol": 0.01, "maxiter": 2000})
    return fit.x


def _bootstrap_errors(table, psd, psresp, parameters, n_bootstrap, n_bins):
    """Half the 16-84 percentile range of the parameters fitted, as the data were, to
    ``n_bootstrap`` light curves simulated from the best fit on the observed sampling."""
    rng = np.random.default_rng(psresp.seed + 1)
    fluxes = psresp.simulated_flux(psd, n_bootstrap, seed=rng.integers(2 ** 63))
    values = []
    for flux in fluxes:
        copy = QTable({"time": table["time"], "flux": flux * table["flux"].unit,
                       "error": table["error"]})
        again = _Psresp(copy, psresp.sampling, n_bins, psresp.n_simulations, psresp.leak,
                        int(rng.integers(2 ** 31)))
        refit = parameters.with_constant(again.noise_level)
        # From the same start as the data's fit, not from its answer: the spread must
        # include where the minimiser stops, not only where the minimum lies.
        values.append(refit.values(_minimise(again, refit, refit.start(again))))
    errors = {}
    for name in values[0]:
        draws = [u.Quantity(v[name]).value for v in values]
        low, high = np.percentile(draws, [16, 84])
        errors[name] = (high - low) / 2 * u.Quantity(values[0][name]).unit \
            if isinstance(values[0][name], u.Quantity) else (high - low) / 2
    return errors


# ---------------------------------------------------------------------- model

@dataclass
class LightCurveModel:
    """An observed light curve's fitted PSD and PDF, and simulations like it.

    Attributes
    ----------
    table : `~astropy.table.QTable`
        The observed light curve (`read_light_curve`).
    psd_fit : `PSDFit`
        The PSD (``psd_fit.psd``) with its errors and goodness of fit.
    pdf : `FluxPDF`
        The flux distribution with its errors.
    red_noise_leak : int
        Length of the simulated series over the observed span.
    dt : `~astropy.units.Quantity`, optional
        The simulation grid's step; by default the median spacing.
    """

    table: QTable
    psd_fit: PSDFit
    pdf: FluxPDF
    red_noise_leak: int = 10
    dt: u.Quantity = None

    @property
    def psd(self):
        """The fitted PSD, in (rms / mean)^2 per Hz."""
        return self.psd_fit.psd

    @property
    def sampling(self):
        return _Sampling.of(self.table["time"], self.dt)

    def simulate(self, n_curves=1, seed=None, max_iterations=200, rtol=1e-4):
        """Light curves with the fitted PSD and PDF on the observed sampling (E13).

        Each is an Emmanoulopoulos et al. (2013) curve on the regular grid
        that holds the observed times (its target spectrum a stretch of a
        Timmer-Koenig series ``red_noise_leak`` times longer, as DELCgen
        does), read at the observed times.  The PSD includes the measurement noise's level and
        the PDF is that of the observed fluxes, so the curves have the
        data's noise: none is added.

        Returns
        -------
        curves : `~galaxyml.variability.LightCurves`
            ``values`` the fluxes (in the table's flux unit), ``time`` the
            observed times since the first, ``error`` the observed errors.
        """
        sampling = self.sampling
        grid = emmanoulopoulos(self.psd, self.pdf, sampling.n_grid, sampling.dt,
                               n_curves=n_curves, rtol=rtol, max_iterations=max_iterations,
                               red_noise_leak=self.red_noise_leak, seed=seed)
        values = grid.values[:, sampling.index]
        time = (self.table["time"] - self.table["time"][0]).to(u.s)
        return LightCurves(values, sampling.dt, converged=grid.converged,
                           n_iterations=grid.n_iterations, quantity="flux",
                           sampled_time=time,
                           error=self.table["error"].to_value(self.table["flux"].unit))


def fit_light_curve(table_or_path, psd_model="bending_power_law", pdf_model="mixture",
                    fixed=None, dt=None, n_simulations=100, red_noise_leak=10, n_bootstrap=20,
                    seed=0):
    """Fit an observed light curve's PSD and PDF, ready to simulate more like it.

    Parameters
    ----------
    table_or_path : `~astropy.table.Table` or path
        Time, flux and error (see `read_light_curve`); gaps and uneven
        sampling are allowed.
    psd_model : {'bending_power_law', 'power_law'}
        Fitted by PSRESP (`fit_psd`).
    pdf_model : {'mixture', 'gamma', 'lognormal'}
        Fitted by maximum likelihood (`fit_pdf`).
    fixed : dict, optional
        PSD parameters held at given values (see `fit_psd`).
    dt : `~astropy.units.Quantity`, optional
        The simulation grid's step; by default the median spacing.
    n_simulations : int
        PSRESP's light curves per trial.
    red_noise_leak : int
        Length of the simulated series over the observed span.
    n_bootstrap : int
        Simulated light curves whose fits give the PSD's errors (see
        `fit_psd`).
    seed : int
        Seed of all simulations.

    Returns
    -------
    model : `LightCurveModel`
    """
    table = read_light_curve(table_or_path)
    psd_fit = fit_psd(table, psd_model, fixed, dt=dt, n_simulations=n_simulations,
                      red_noise_leak=red_noise_leak, n_bootstrap=n_bootstrap, seed=seed)
    return LightCurveModel(table, psd_fit, fit_pdf(table["flux"], pdf_model), red_noise_leak,
                           dt)
