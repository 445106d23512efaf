# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The parameters of a batch's tasks: defaults, a TOML or YAML file, and their record."""

import copy
import hashlib
import json
import tomllib
from pathlib import Path

from ..exceptions import InvalidParameterError, MissingFileError, UnknownBandError
from ..utils._optional import optional_import

__all__ = ["TASKS", "DEFAULT_CONFIG", "PRESETS", "batch_config", "config_hash", "add_config_cards"]

#: The tasks a batch can run on each field, in the order they run.  ``catalog`` (detect and
#: select galaxies) always runs; the others work on each galaxy's multi-band cutout.
TASKS = ("catalog", "cutouts", "restore", "psfgan", "morphology", "mergers")

#: Every parameter a batch takes, with its default.  A config file overrides any of them
#: (see `batch_config`); ``model = ""`` is the model shipped with galaxyml.
DEFAULT_CONFIG = {
    "bands": "gri",              # bands read, cut and written
    "reference_band": "r",       # the cutouts' pixel grid
    "size": 64,                  # cutout side in pixels
    "chunk_size": 32,            # galaxies cut and processed at a time (bounds memory)
    "limits": {                  # a field past either fails with the reason; 0: no limit
        "field_seconds": 3600.0,
        "field_memory_mib": 8192.0,  # the worker process's resident memory
    },
    "catalog": {                 # galaxyml.datasets.galaxy_catalog
        "detection_band": "r",
        "mag_range": [12.0, 21.0],
        "min_size_ratio": 1.15,  # the star/galaxy separation
        "max_neighbour_flux_ratio": 0.5,  # above: flagged blended
        "max_masked_fraction": 0.1,       # above: flagged masked
        "drop_flagged": False,   # drop blended and masked galaxies instead of flagging them
        "nsigma": 3.0,
        "max_galaxies": 0,       # the brightest N per field; 0 keeps all
    },
    "cutouts": {},               # galaxyml.io.multiband_cutout, written as FITS
    # galaxyml.gan.GalaxyGAN.recover; fwhm: arcsec of Gaussian blur undone (refine mode)
    "restore": {"model": "", "samples": 0, "fwhm": 1.4},
    "psfgan": {"model": "", "band": "r", "write": True},  # galaxyml.gan.PSFGAN
    "morphology": {"band": "r"},                          # galaxyml.morphology
    "mergers": {"model": ""},                             # galaxyml.mergers.MergerClassifier
}


#: Selections of the papers' training sets, applied over the defaults by ``preset``:
#: ``training`` is the selection the shipped GalaxyGAN and PSFGAN were trained on (isolated,
#: unmasked galaxies to r = 21); ``main-sample`` that of the SDSS main galaxy sample's
#: magnitude limit (r < 17.77), from which Galaxy Zoo and the GAN papers drew their galaxies.
PRESETS = {
    "training": {"catalog": {"mag_range": [12.0, 21.0], "drop_flagged": True}},
    "main-sample": {"catalog": {"mag_range": [14.0, 17.77], "drop_flagged": True}},
}


def batch_config(config=None, preset=None, **overrides):
    """The complete parameters of a batch: the defaults updated by a preset, a file or a dict.

    Parameters
    ----------
    config : path or dict, optional
        A TOML file (``.toml``), a YAML file (``.yaml``, ``.yml``; needs
        PyYAML) or a dict, with any of the keys of `DEFAULT_CONFIG`;
        task sections are dicts (TOML tables), for example::

            size = 96
            [catalog]
            mag_range = [14.0, 19.0]
            max_galaxies = 50

    preset : str, optional
        A name from `PRESETS`, applied over the defaults and under
        ``config``.
    **overrides
        Top-level keys that take precedence over the file (as the command
        line's options do).

    Returns
    -------
    config : dict
        Every key of `DEFAULT_CONFIG`, JSON-serialisable.

    Raises
    ------
    InvalidParameterError
        An unknown key or section, a value of the wrong type, an unreadable
        file.
    """
    result = copy.deepcopy(DEFAULT_CONFIG)
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidParameterError(f"unknown preset {preset!r}; the presets are "
                                        f"{sorted(PRESETS)}")
        _update(result, copy.deepcopy(PRESETS[preset]))
    given = _read(config) if isinstance(config, (str, Path)) else dict(config or {})
    given.update({key: value for key, value in overrides.items() if value is not None})
    return _update(result, given)


def _update(result, given):
    """``result`` (complete parameters) updated by ``given``, each value checked."""
    for key, value in given.items():
        if key not in result:
            raise InvalidParameterError(f"unknown batch parameter {key!r}; known: "
                                        f"{sorted(result)}")
        default = result[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise InvalidParameterError(f"[{key}] must be a section of parameters, not "
                                            f"{value!r}")
            unknown = sorted(set(value) - set(default))
            if unknown:
                raise InvalidParameterError(f"unknown parameter(s) {unknown} in [{key}]; "
                                            f"known: {sorted(default)}")
            for name, item in value.items():
                default[name] = _checked(f"{key}.{name}", default[name], item)
        else:
            result[key] = _checked(key, default, value)
    return result


def _checked(name, default, value):
    """``value``, of the default's type (ints accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or float(value).is_integer())
        value = type(default)(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        value = [float(v) for v in value] if ok else value
    else:
        ok = isinstance(value, str) or (name == "bands" and isinstance(value, (list, tuple)))
        value = "".join(value) if name == "bands" and ok else value
    if not ok:
        raise InvalidParameterError(f"batch parameter {name} must be like {default!r}, not "
                                    f"{_short_repr(value)}")
    if name == "bands":
        _check_band_letters(value)
    low, high = _BOUNDS.get(name, (None, None))
    if low is not None and not low <= value <= high:
        raise InvalidParameterError(f"batch parameter {name} must be from {low} to {high}, "
                                    f"not {value}")
    return value


# Bounds of the numbers whose size costs time or memory (a stamp's side, galaxies in memory,
# dropout draws per galaxy) or that must not be negative.
_BOUNDS = {"size": (16, 1024), "chunk_size": (1, 4096), "restore.samples": (0, 64),
           "restore.fwhm": (0.0, 10.0), "catalog.max_galaxies": (0, 10 ** 6),
           "catalog.nsigma": (0.5, 1000.0), "limits.field_seconds": (0.0, 10.0 ** 7),
           "limits.field_memory_mib": (0.0, 10.0 ** 8)}


def _short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_band_letters(bands):
    from ..utils._sdss import SDSS_BANDS

    unknown = sorted(set(bands) - set(SDSS_BANDS))
    if unknown or not bands or len(set(bands)) != len(bands):
        raise UnknownBandError(f"bands must be distinct letters from {SDSS_BANDS!r}, not "
                               f"{_short_repr(bands)}" + (f" (unknown: {unknown})" if unknown
                                                          else ""))


# A configuration is a few hundred bytes; a larger file is not one.
_MAX_CONFIG_BYTES = 1_000_000


def _read(path):
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such batch configuration file")
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise InvalidParameterError(f"{path}: {path.stat().st_size} bytes is too large for a "
                                    f"batch configuration (at most {_MAX_CONFIG_BYTES})")
    try:
        text = path.read_text()
        content = (_load_yaml(text) if path.suffix in (".yaml", ".yml")
                   else tomllib.loads(text)) or {}
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (TOML, YAML and decoding errors alike)
        message = " ".join(str(exc).split())[:300]
        raise InvalidParameterError(f"{path}: not a valid configuration file "
                                    f"({type(exc).__name__}: {message})") from None
    if not isinstance(content, dict):
        raise InvalidParameterError(f"{path}: a configuration is a mapping of parameters")
    return content


def _load_yaml(text):
    """YAML through a safe loader that refuses aliases (they can expand without bound)."""
    yaml = optional_import("yaml", "YAML configurations", "dask")

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise InvalidParameterError("YAML aliases (*name) are not allowed in a batch "
                                            "configuration")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliasLoader)


def _canonical_json(config):
    """The configuration as compact JSON with sorted keys: one text for one configuration."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_hash(config):
    """A short digest of a configuration: equal digests, equal parameters."""
    return hashlib.sha256(_canonical_json(config).encode()).hexdigest()[:16]


def add_config_cards(header, config, tasks):
    """Record the batch's tasks and parameters in a FITS header (in place).

    ``GMLTASKS`` lists the tasks, ``GMLCFGH`` is the configuration's
    `config_hash`, and HISTORY cards hold the configuration as JSON.
    """
    header["GMLTASKS"] = (",".join(tasks), "galaxyml batch tasks")
    header["GMLCFGH"] = (config_hash(config), "galaxyml batch configuration digest")
    text = _canonical_json(config)
    for start in range(0, len(text), 48):  # 23 + 48 characters fit one HISTORY card
        header.add_history(f"galaxyml batch config: {text[start:start + 48]}")
    return header
