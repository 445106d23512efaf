# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Hostile and broken inputs for galaxyml's readers: valid seeds, mutations and crafted files.

Shared by the fuzzing tests (``test_fuzz.py``, driven by hypothesis) and by
``benchmarks/fuzz_readers.py``, which counts the outcomes of many more
inputs in subprocesses with time and memory limits.  Each reader takes a
path and either returns or raises; galaxyml's contract is that it raises
only `~galaxyml.exceptions.GalaxymlError`, in bounded time and memory.
"""

import bz2
import gzip
import io
import random
import re
import struct
import zlib

import numpy as np

__all__ = ["KINDS", "seed_files", "mutate", "crafted_files", "read"]

#: The kinds of input, each with its reader (see `read`).
KINDS = ("fits", "sdss_frame", "field_table", "config", "image")

# Header values that broke or could break a reader: negative, huge, not a number.
_ABSURD = ["-5", "0", "1", "999", "1000", str(2 ** 31 - 1), str(2 ** 63), "10000000000",
           "1000000000", "-2147483648", "'text'", "1.5E300", "NaN"]
_KEYWORDS = [b"NAXIS ", b"NAXIS1", b"NAXIS2", b"BITPIX", b"TFIELDS", b"PCOUNT", b"GCOUNT",
             b"THEAP ", b"ZNAXIS1", b"ZNAXIS2", b"TFORM1", b"BSCALE", b"CRPIX1", b"CD1_1 ",
             b"EXPTIME", b"NMGY  "]


def _fits_image(shape=(24, 32), dtype=np.float32, extensions=True):
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.000110, 0.000110]
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    hdus = [fits.PrimaryHDU(data, header=wcs.to_header())]
    if extensions:
        hdus.append(fits.ImageHDU(np.ones(shape, np.float32), name="ERR"))
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column(name="x", format="E", array=np.arange(5.0))]))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def seed_files(directory):
    """Write valid inputs of every kind into ``directory``; kind -> list of paths.

    ``sdss_frame`` seeds are (frame, psField, fpM) of a small simulated
    field, whose frame is what the mutations change.
    """
    from PIL import Image

    from galaxyml.datasets import simulate_sdss_field

    directory.mkdir(parents=True, exist_ok=True)
    seeds = {kind: [] for kind in KINDS}
    raw = _fits_image()
    for name, content in (("image.fits", raw), ("image.fits.bz2", bz2.compress(raw)),
                          ("image.fits.gz", gzip.compress(raw))):
        (directory / name).write_bytes(content)
        seeds["fits"].append(directory / name)
    field = simulate_sdss_field(directory / "field", bands="r", shape=(96, 128), n_galaxies=3,
                                n_stars=2, run=9998, camcol=1, field=5, seed=1, overwrite=True)
    seeds["sdss_frame"].append(field.files.frames["r"])
    (directory / "fields.csv").write_text("run,camcol,field,rerun\n2583,2,136,301\n2583,2,137,\n")
    (directory / "fields.ecsv").write_text(
        "# %ECSV 1.0\n# ---\n# datatype:\n# - {name: run, datatype: int64}\n"
        "# - {name: camcol, datatype: int64}\n# - {name: field, datatype: int64}\n"
        "run camcol field\n2583 2 136\n")
    seeds["field_table"] += [directory / "fields.csv", directory / "fields.ecsv"]
    (directory / "batch.toml").write_text('size = 48\nbands = "gri"\n[catalog]\n'
                                          'mag_range = [14.0, 19.0]\nmax_galaxies = 5\n')
    (directory / "batch.yaml").write_text("size: 48\ncatalog:\n  mag_range: [14, 19]\n"
                                          "mergers:\n  model: ''\n")
    seeds["config"] += [directory / "batch.toml", directory / "batch.yaml"]
    rgb = (np.indices((48, 48)).sum(axis=0)[..., None] * [1, 2, 3] % 256).astype(np.uint8)
    for name in ("image.png", "image.jpg"):
        Image.fromarray(rgb).save(directory / name)
        seeds["image"].append(directory / name)
    return seeds


def mutate(content, rng):
    """A broken version of ``content`` (bytes), by one of several damages chosen by ``rng``."""
    damage = rng.choice(["flip", "truncate", "header", "header", "splice", "repeat"])
    data = bytearray(content)
    if damage == "flip" and data:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif damage == "truncate":
        data = data[:rng.randrange(len(data) + 1)]
    elif damage == "header":
        data = bytearray(_absurd_header_value(bytes(data), rng))
    elif damage == "splice" and data:
        start = rng.randrange(len(data))
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    else:
        start = rng.randrange(len(data) + 1)
        data[start:start] = data[start:start + 80] * rng.randint(1, 50)
    return bytes(data)


def _absurd_header_value(content, rng):
    """A FITS header keyword (or a text number) given an absurd value, compressed alike."""
    if content[:3] == b"BZh":
        return bz2.compress(_absurd_header_value(bz2.decompress(content), rng))
    if content[:2] == b"\x1f\x8b":
        return gzip.compress(_absurd_header_value(gzip.decompress(content), rng))
    value = rng.choice(_ABSURD)
    if content.startswith(b"SIMPLE"):
        keyword = rng.choice(_KEYWORDS)
        places = [m.start() for m in re.finditer(re.escape(keyword), content)
                  if m.start() % 80 == 0]
        if not places:
            return content
        start = rng.choice(places)
        card = f"{keyword.decode().strip():<8}= {value:>20}".ljust(80).encode()
        return content[:start] + card + content[start + 80:]
    numbers = list(re.finditer(rb"\d+", content))
    if not numbers:
        return content
    match = rng.choice(numbers)
    return content[:match.start()] + value.encode() + content[match.end():]


def crafted_files(directory):
    """Inputs made to cost time or memory: kind -> list of paths."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    crafted = {kind: [] for kind in KINDS}
    # 4 GiB of zeros as 256 compressed streams of 16 MiB (a FITS header first): 25 kB in
    # bzip2, 4 MB in gzip.
    zeros = _fits_image()[:2880] + bytes((1 << 24) - 2880)
    for name, compress in (("bomb.fits.bz2", bz2.compress), ("bomb.fits.gz", gzip.compress)):
        stream = compress(zeros)
        (directory / name).write_bytes(stream + compress(bytes(1 << 24)) * 255)
        crafted["fits"].append(directory / name)
    raw = _fits_image()
    for keyword, value in ((b"NAXIS2", "-5"), (b"NAXIS ", "1000000000"),
                           (b"TFIELDS", str(2 ** 31 - 1)), (b"NAXIS1", str(2 ** 40))):
        start = raw.find(keyword) if keyword != b"TFIELDS" else raw.rfind(keyword)
        card = f"{keyword.decode().strip():<8}= {value:>20}".ljust(80).encode()
        path = directory / f"absurd-{keyword.decode().strip()}.fits"
        path.write_bytes(raw[:start] + card + raw[start + 80:])
        crafted["fits"].append(path)
    # A known parameter whose value nests nine levels of nine aliases: 9 ** 10 strings once
    # expanded (by a repr in an error message, say) from 400 bytes.
    levels = ['&a ["x","x","x","x","x","x","x","x","x"]']
    levels += [f"&{chr(98 + k)} [" + ",".join([f"*{chr(97 + k)}"] * 9) + "]" for k in range(9)]
    (directory / "bomb.yaml").write_text(f"size: [{', '.join(levels)}]\n")
    crafted["config"].append(directory / "bomb.yaml")
    (directory / "huge.png").write_bytes(_blank_png(13000, 13000))
    # A 10 x 10 PNG whose image-data chunk claims 3.4 GiB.
    small = _blank_png(10, 10)
    idat = small.find(b"IDAT") - 4
    (directory / "absurd-chunk.png").write_bytes(small[:idat] + struct.pack(">I", 0xDC000000)
                                                 + small[idat + 4:])
    crafted["image"] += [directory / "huge.png", directory / "absurd-chunk.png"]
    rgb = np.zeros((48, 48, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("CMYK").save(directory / "cmyk.jpg")
    grey16 = (np.indices((48, 48)).sum(axis=0) * 1000).astype(np.uint16)
    Image.fromarray(grey16).save(directory / "grey16.png")
    crafted["image"] += [directory / "cmyk.jpg", directory / "grey16.png"]
    (directory / "fields.png").write_bytes(_blank_png(10, 10))
    crafted["field_table"].append(directory / "fields.png")
    (directory / "huge-numbers.csv").write_text("run,camcol,field\n" + "9" * 40 + ",2,136\n")
    crafted["field_table"].append(directory / "huge-numbers.csv")
    return crafted


def _blank_png(width, height):
    """A valid greyscale PNG of zeros: a few hundred kilobytes that decode to width x height."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def read(kind, path, seeds=None):
    """Read ``path`` as galaxyml reads an input of ``kind``.

    ``sdss_frame`` inputs are read with the seed field's psField and fpM
    (``seeds['sdss_frame']``'s field).
    """
    if kind == "fits":
        from galaxyml.io import read_image
        return read_image(path)
    if kind == "sdss_frame":
        from galaxyml.io import read_sdss_frame
        frame = seeds["sdss_frame"][0]
        return read_sdss_frame(path, psfield=frame.parent / "psField-009998-1-0005.fits",
                               fpm=frame.parent / "fpM-009998-r1-0005.fits")
    if kind == "field_table":
        from galaxyml.batch import read_fields
        return read_fields(path)
    if kind == "config":
        from galaxyml.batch import batch_config
        return batch_config(path)
    from galaxyml.datasets.galaxyzoo import read_rgb_image
    return read_rgb_image(path)


def random_input(kind, seeds, rng, directory, number):
    """Write a mutated seed of ``kind`` into ``directory``; its path (the seed's suffixes)."""
    seed = rng.choice(seeds[kind])
    path = directory / f"input-{number}{''.join(seed.suffixes)}"
    path.write_bytes(mutate(seed.read_bytes(), rng))
    return path


def new_rng(seed):
    """The random generator of one input (a `random.Random`)."""
    return random.Random(seed)
