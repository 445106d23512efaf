# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Field tables, directories of frames, and batch configurations."""

import json

import pytest
from astropy.io import fits
from astropy.table import QTable

from galaxyml.batch import DEFAULT_CONFIG, add_config_cards, batch_config, config_hash, \
    read_fields
from galaxyml.batch.tasks import check_tasks
from galaxyml.exceptions import InvalidParameterError, MissingColumnError, MissingFileError


def test_read_fields_from_tables(tmp_path):
    table = QTable({"run": [2583, 94, 2583], "camcol": [2, 1, 2], "field": [136, 12, 136]})
    table.write(tmp_path / "fields.ecsv")
    table["rerun"] = [301, 40, 301]
    table.write(tmp_path / "fields.csv")
    from_ecsv = read_fields(tmp_path / "fields.ecsv")
    assert list(from_ecsv["name"]) == ["2583-2-136", "94-1-12"]  # listed twice, kept once
    assert list(from_ecsv["rerun"]) == [301, 301]                 # the default rerun
    assert list(read_fields(tmp_path / "fields.csv")["rerun"]) == [301, 40]
    assert list(read_fields([(5, 3, 7)])["name"]) == ["5-3-7"]


def test_read_fields_from_a_directory_of_frames(tmp_path):
    for name in ("frame-r-002583-2-0136.fits.bz2", "frame-g-002583-2-0136.fits.bz2",
                 "sub/frame-i-000094-1-0012.fits", "frame-r-002583-2-0136.txt",
                 "psField-002583-2-0137.fit"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    assert list(read_fields(tmp_path)["name"]) == ["94-1-12", "2583-2-136"]
    with pytest.raises(InvalidParameterError, match="no SDSS frame"):
        read_fields(_empty(tmp_path))


def _empty(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    return path


@pytest.mark.parametrize("table, error, match", [
    (QTable({"run": [1], "field": [2]}), MissingColumnError, "camcol"),
    (QTable({"run": [1.5], "camcol": [2], "field": [3]}), InvalidParameterError, "integers"),
    (QTable({"run": [1], "camcol": [7], "field": [3]}), InvalidParameterError, "camcol"),
    (QTable({"run": [1], "camcol": [2], "field": [0]}), InvalidParameterError, "from 1 to"),
])
def test_bad_field_tables(table, error, match):
    with pytest.raises(error, match=match):
        read_fields(table)


def test_missing_field_table(tmp_path):
    with pytest.raises(MissingFileError, match="no such field table"):
        read_fields(tmp_path / "absent.ecsv")


def test_config_defaults_file_and_overrides(tmp_path):
    assert batch_config() == DEFAULT_CONFIG
    toml = tmp_path / "batch.toml"
    toml.write_text('size = 96\nbands = "ugriz"\n[catalog]\nmag_range = [14, 19]\n'
                    'max_galaxies = 5\n[mergers]\nmodel = "my.keras"\n')
    config = batch_config(toml, bands="gri")
    assert config["size"] == 96 and config["bands"] == "gri"          # overrides win
    assert config["catalog"]["mag_range"] == [14.0, 19.0]
    assert config["catalog"]["max_galaxies"] == 5
    assert config["catalog"]["nsigma"] == DEFAULT_CONFIG["catalog"]["nsigma"]
    assert config["mergers"]["model"] == "my.keras"
    yaml = tmp_path / "batch.yaml"
    yaml.write_text("size: 96\nbands: gri\ncatalog:\n  mag_range: [14, 19]\n  max_galaxies: 5\n"
                    "mergers:\n  model: my.keras\n")
    pytest.importorskip("yaml")
    assert batch_config(yaml) == config
    assert config_hash(batch_config(yaml)) == config_hash(config) != config_hash(batch_config())
    json.dumps(config)  # recorded as JSON in headers and run.json


@pytest.mark.parametrize("given, match", [
    ({"sizes": 3}, "unknown batch parameter 'sizes'"),
    ({"catalog": {"mag_limit": 3}}, r"unknown parameter\(s\) \['mag_limit'\] in \[catalog\]"),
    ({"size": "big"}, "batch parameter size"),
    ({"size": 64.5}, "batch parameter size"),
    ({"catalog": 3}, r"\[catalog\] must be a section"),
    ({"catalog": {"mag_range": [14]}}, "catalog.mag_range"),
])
def test_bad_configs(given, match):
    with pytest.raises(InvalidParameterError, match=match):
        batch_config(given)


def test_bad_config_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("size = = 3\n")
    with pytest.raises(InvalidParameterError, match="not a valid configuration"):
        batch_config(path)
    with pytest.raises(MissingFileError):
        batch_config(tmp_path / "absent.toml")


def test_config_cards_round_trip():
    config = batch_config({"size": 48})
    header = add_config_cards(fits.Header(), config, ("catalog", "cutouts"))
    assert header["GMLTASKS"] == "catalog,cutouts"
    assert header["GMLCFGH"] == config_hash(config)
    text = "".join(value.split("config: ", 1)[1] for value in header["HISTORY"])
    assert json.loads(text) == config


def test_tasks_in_running_order():
    assert check_tasks("mergers,cutouts") == ("catalog", "cutouts", "mergers")
    assert check_tasks(["catalog"]) == ("catalog",)
    with pytest.raises(InvalidParameterError, match="unknown task"):
        check_tasks("catalog,deblend")
