# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Downloads are checked before they are kept: web pages, short, slow and corrupt files."""

import bz2
import http.server
import io
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from galaxyml.datasets import conf, download_verified, sdss_field_files, sdss_file_urls
from galaxyml.exceptions import SDSSDataNotFoundError


def _fits_bytes():
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.arange(400, dtype=np.float32).reshape(20, 20)).writeto(buffer)
    return buffer.getvalue()


GOOD = bz2.compress(_fits_bytes())


class _Archive(http.server.BaseHTTPRequestHandler):
    """Serves each path's bytes as ``self.server.files`` says: (body, headers, behaviour)."""

    def do_GET(self):  # noqa: N802  (the standard library's name)
        body, headers, behaviour = self.server.files.get(
            self.path, (b"not found", {"Content-Type": "text/plain"}, "404"))
        self.server.requests.append(self.path)
        self.send_response(404 if behaviour == "404" else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if behaviour == "slow":  # a byte at a time, forever as far as the client knows
            for byte in body:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    server.daemon_threads = True
    server.files, server.requests = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _serve(server, path, body, content_type="application/x-bzip2", length=True,
           behaviour=""):
    headers = {"Content-Type": content_type}
    if length is True:
        headers["Content-Length"] = str(len(body))
    elif length:
        headers["Content-Length"] = str(length)
    server.files[path] = (body, headers, behaviour)


@pytest.mark.parametrize("case, match", [
    ("html", "sent a web page"),
    ("truncated", "not a complete FITS file"),
    ("short", "incomplete|IncompleteRead|download"),
    ("corrupt", "not a complete FITS file"),
])
def test_bad_downloads_are_refused(archive, tmp_path, case, match):
    server, base = archive
    body = {"html": b"<html><body>Service unavailable</body></html>",
            "truncated": GOOD[:len(GOOD) // 2], "short": GOOD,
            "corrupt": GOOD[:100] + bytes(200) + GOOD[300:]}[case]
    _serve(server, "/file.fits.bz2", body,
           content_type="text/html; charset=utf-8" if case == "html" else "application/x-bzip2",
           length=False if case == "truncated" else (len(GOOD) + 1000 if case == "short" else True))
    with pytest.raises(Exception, match=match) as error:
        download_verified(f"{base}/file.fits.bz2", tmp_path / "file.fits.bz2")
    assert case == "short" or isinstance(error.value, SDSSDataNotFoundError)


def test_a_trickling_download_is_abandoned(archive, tmp_path):
    server, base = archive
    _serve(server, "/slow.fits.bz2", GOOD, behaviour="slow")
    start = time.monotonic()
    with pytest.raises(SDSSDataNotFoundError, match="took more than 1 s"):
        download_verified(f"{base}/slow.fits.bz2", tmp_path / "slow.fits.bz2", timeout=1.0)
    assert time.monotonic() - start < 5


def _serve_field(server, base, field, frame=GOOD):
    """A field of band r in the served archive: frame, psField, fpM (any FITS passes)."""
    plain = _fits_bytes()
    urls = sdss_file_urls(9999, 3, field, "r", base_url=base)
    for kind, body in (("frame", frame), ("psField", plain), ("fpM", plain)):
        _serve(server, urls[kind][len(base):], body)
    return urls


def test_a_bad_download_never_takes_the_final_name(archive, tmp_path):
    server, base = archive
    urls = _serve_field(server, base, 70, frame=b"<html>error</html>")
    mirror = tmp_path / "mirror"
    with conf.set_temp("sdss_base_url", base):
        with pytest.raises(SDSSDataNotFoundError, match="not a complete FITS file"):
            sdss_field_files(9999, 3, 70, bands="r", data_dirs=[mirror], download=True,
                             download_dir=mirror, show_progress=False)
    frame = mirror / urls["frame"][len(base) + 1:]
    assert not frame.exists() and not list(frame.parent.glob(".*partial*"))


def test_a_stored_bad_download_is_set_aside_and_fetched_again(archive, tmp_path):
    server, base = archive
    urls = _serve_field(server, base, 71)
    mirror = tmp_path / "mirror"
    frame = mirror / urls["frame"][len(base) + 1:]
    frame.parent.mkdir(parents=True)
    frame.write_bytes(b"<html>error page saved by an earlier version</html>")
    with conf.set_temp("sdss_base_url", base):
        files = sdss_field_files(9999, 3, 71, bands="r", data_dirs=[mirror], download=True,
                                 download_dir=mirror, show_progress=False)
    assert files.frames["r"] == frame and frame.read_bytes() == GOOD
    aside = list(frame.parent.glob(f"{frame.name}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"<html>")
    # A user's own file elsewhere is never moved, whatever it holds.
    own = tmp_path / "own"
    own.mkdir()
    (own / "frame-r-009999-3-0071.fits.bz2").write_bytes(b"<html>mine</html>")
    with conf.set_temp("sdss_base_url", base):
        files = sdss_field_files(9999, 3, 71, bands="r", data_dirs=[own], download=True,
                                 download_dir=mirror, show_progress=False)
    assert files.frames["r"] == own / "frame-r-009999-3-0071.fits.bz2"
    assert files.frames["r"].read_bytes() == b"<html>mine</html>"


def test_the_cache_keeps_only_checked_files(archive, tmp_path):
    from astropy.config import set_temp_cache
    from astropy.utils.data import download_file, import_file_to_cache, is_url_in_cache

    server, base = archive
    urls = _serve_field(server, base, 72)
    with set_temp_cache(tmp_path / "cache"), conf.set_temp("sdss_base_url", base):
        bad = tmp_path / "bad.fits.bz2"
        bad.write_bytes(b"<html>cached error page</html>")
        import_file_to_cache(urls["frame"], str(bad))  # as an earlier version left it
        files = sdss_field_files(9999, 3, 72, bands="r", download=True, show_progress=False)
        assert files.frames["r"].read_bytes() == GOOD
        assert is_url_in_cache(urls["frame"])
        assert download_file(urls["frame"], cache=True) == str(files.frames["r"])


def test_files_set_aside_keep_each_other(tmp_path):
    from galaxyml.datasets.sdss import set_aside

    for content in ("first", "second", "third"):
        (tmp_path / "frame.fits").write_text(content)
        set_aside(tmp_path / "frame.fits")
    kept = sorted(path.read_text() for path in tmp_path.iterdir())
    assert kept == ["first", "second", "third"]
    assert not (tmp_path / "frame.fits").exists()
