# Licensed under a 3-clause BSD style license - see LICENSE.rst
import pytest

from galaxyml.io import multiband_cutout, read_sdss_frame
from galaxyml.visualization import image_norm, plot_cutouts, save_figure


def test_plot_and_save_cutouts(simulated_field, tmp_path):
    files = simulated_field.files
    frames = {b: read_sdss_frame(files.frames[b], psfield=files.psfield) for b in "gri"}
    cutouts = [multiband_cutout(frames, (x, 120.0), 32) for x in (80.0, 160.0)]
    figure = plot_cutouts(cutouts, titles=["a", "b"])
    assert len(figure.axes) == 2 * 4  # three bands and a colour image per row
    path = save_figure(figure, tmp_path / "cutouts.png")
    assert path.stat().st_size > 1000
    norm = image_norm(cutouts[0].data[1])
    assert 0 <= norm(cutouts[0].data[1].max()) <= 1
    with pytest.raises(ValueError, match="no cutouts"):
        plot_cutouts([])
