# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The parameters of a batch's tasks: defaults, a TOML or YAML file, and their record."""

import copy
import hashlib
import json
import tomllib
from pathlib import Path

from ..exceptions import InvalidParameterError, MissingFileError
from ..utils._optional import optional_import

__all__ = ["TASKS", "DEFAULT_CONFIG", "batch_config", "config_hash", "add_config_cards"]

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
    "catalog": {                 # galaxyml.datasets.galaxy_catalog
        "detection_band": "r",
        "mag_range": [14.0, 17.77],
        "min_size_ratio": 1.15,
        "max_neighbour_flux_ratio": 0.5,
        "max_masked_fraction": 0.1,
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


def batch_config(config=None, **overrides):
    """The complete parameters of a batch: the defaults updated by a file or a dict.

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
    given = _read(config) if isinstance(config, (str, Path)) else dict(config or {})
    given.update({key: value for key, value in overrides.items() if value is not None})
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
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        value = [float(v) for v in value] if ok else value
    else:
        ok = isinstance(value, str) or (name == "bands" and isinstance(value, (list, tuple)))
        value = "".join(value) if name == "bands" and ok else value
    if not ok:
        raise InvalidParameterError(f"batch parameter {name} must be like {default!r}, not "
                                    f"{value!r}")
    return value


def _read(path):
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such batch configuration file")
    try:
        if path.suffix in (".yaml", ".yml"):
            yaml = optional_import("yaml", "YAML configurations", "dask")
            content = yaml.safe_load(path.read_text()) or {}
        else:
            content = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InvalidParameterError(f"{path}: not a valid configuration file ({exc})") from exc
    if not isinstance(content, dict):
        raise InvalidParameterError(f"{path}: a configuration is a mapping of parameters")
    return content


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
