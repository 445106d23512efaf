# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Opening FITS files in bounded time and memory: streamed decompression, header checks."""

import bz2
import contextlib
import io
import warnings
import zlib
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from ..exceptions import FITSReadError, GalaxymlError, MissingFileError
from ._limits import conf

__all__ = ["open_fits", "check_fits_structure"]


@contextlib.contextmanager
def open_fits(path):
    """Open a FITS file read-only, turning every reading failure into `FITSReadError`.

    Whole-file gzip and bzip2 compression is undone in memory in one pass
    (astropy would decompress again for every backward seek between HDUs),
    stopping at ``galaxyml.io.conf.max_fits_bytes``; tile-compressed HDUs
    are handled by `astropy.io.fits`.  Before astropy sees the file, its
    headers are checked (`check_fits_structure`): a header value that is
    absurd or a data unit that the file cannot hold is refused at once, so
    that a hostile file costs bounded time and memory.  Data are read into
    memory (no memory map), so that a truncated file fails here, with the
    file named, rather than later.  Errors raised by galaxyml itself inside
    the block pass through unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    try:
        # The stream is ours to close: astropy leaves it open when opening fails.
        with _stream(path) as stream, warnings.catch_warnings():
            check_fits_structure(stream, path)
            # astropy only warns about a truncated file; losing data must be an error.
            warnings.filterwarnings("error", message=".*truncated.*", category=VerifyWarning)
            warnings.filterwarnings("error", message=".*[Tt]runcated.*", category=UserWarning)
            with fits.open(stream, memmap=False, lazy_load_hdus=False) as hdul:
                yield hdul
    except GalaxymlError:
        raise
    except (Exception, VerifyWarning, UserWarning) as exc:  # noqa: BLE001
        # Whatever astropy or the reader raised on the file's content, the file is at fault.
        message = " ".join(str(exc).split())[:300]
        raise FITSReadError(f"{path}: cannot be read as FITS, the file is truncated or "
                            f"corrupt ({type(exc).__name__}: {message})") from exc


def _unreadable(path, why):
    """The message of a `FITSReadError`."""
    return f"{path}: cannot be read as FITS: {why}"


def _max_bytes():

    return int(conf.max_fits_bytes)


def _stream(path):
    """A binary stream of the FITS content: the file, or its decompressed bytes."""
    with open(path, "rb") as stream:
        magic = stream.read(3)
    if magic == b"BZh":
        return io.BytesIO(_decompress(path, bz2.BZ2Decompressor))
    if magic[:2] == b"\x1f\x8b":
        return io.BytesIO(_decompress(path, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)))
    if path.stat().st_size > _max_bytes():
        message = (f"its {path.stat().st_size} bytes are more than the {_max_bytes()} that "
                   f"galaxyml.io.conf.max_fits_bytes allows")
        raise FITSReadError(_unreadable(path, message))
    return open(path, "rb")


_CHUNK = 4 << 20
_RATIO_FLOOR = 64 << 20


def _decompress(path, new_decompressor):
    """The decompressed content of a bzip2 or gzip file (one or more streams), refused
    beyond the size limit.

    At most 4 MiB are decompressed at a time, so that a decompression
    bomb is stopped at the limit rather than after filling the memory.
    """

    # Real images compress a few times (SDSS frames 3, masks 2 to 4); twenty times past
    # 64 MiB is a bomb.
    ratio_limit = max(_RATIO_FLOOR, path.stat().st_size * int(conf.max_compression_ratio))
    limit = min(_max_bytes(), ratio_limit)
    output = bytearray()
    with open(path, "rb") as compressed:
        data = compressed.read(_CHUNK)
        while data:
            decompressor = new_decompressor()
            try:
                data = _one_stream(decompressor, data, compressed, output, limit, path)
            except FITSReadError:
                raise
            except (OSError, EOFError, ValueError, zlib.error) as exc:
                message = f"the compressed stream is corrupt ({type(exc).__name__}: {exc})"
                raise FITSReadError(_unreadable(path, message)) from None
            if not decompressor.eof:
                message = "the compressed stream is truncated"
                raise FITSReadError(_unreadable(path, message))
            data = data or compressed.read(_CHUNK)  # the next stream, if any
    return bytes(output)


def _one_stream(decompressor, data, compressed, output, limit, path):
    """Decompress one stream into ``output``; the input that follows it."""
    while not decompressor.eof:
        if isinstance(decompressor, bz2.BZ2Decompressor):
            if decompressor.needs_input and not data:
                data = compressed.read(_CHUNK)
                if not data:
                    break
            output += decompressor.decompress(data, max_length=_CHUNK)
            data = b""
        else:
            data = decompressor.unconsumed_tail or data or compressed.read(_CHUNK)
            if not data:
                break
            output += decompressor.decompress(data, _CHUNK)
            data = b""
        if len(output) > limit:
            message = (f"it decompresses to more than {limit} bytes, beyond "
                       f"galaxyml.io.conf.max_fits_bytes or max_compression_ratio "
                       f"(a decompression bomb, or raise the limits)")
            raise FITSReadError(_unreadable(path, message))
    return decompressor.unused_data if decompressor.eof else b""


# The FITS standard's bounds (version 4.0): NAXIS and TFIELDS at most 999.
_MAX_NAXIS = 999
_MAX_TFIELDS = 999
_MAX_HEADER_BLOCKS = 10_000   # 360,000 cards
_MAX_HDUS = 10_000
_BLOCK = 2880
_BITPIX = (8, 16, 32, 64, -32, -64)


def check_fits_structure(stream, path="file"):
    """Check the headers of a FITS stream against what it can hold, before any allocation.

    Walks the headers (a few kilobytes each), checks that ``BITPIX``,
    ``NAXIS``, ``NAXISn``, ``PCOUNT``, ``GCOUNT``, ``TFIELDS`` and the
    tile-compression sizes ``ZNAXISn`` are within the standard's bounds,
    and that every data unit fits in what remains of the file; then
    rewinds the stream.

    Raises
    ------
    FITSReadError
        The stream is not FITS, a header is unterminated or holds an
        absurd value, or a data unit runs past the end of the file.
    """
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    offset, number = 0, 0
    while offset < size:
        stream.seek(offset)
        if number and not stream.read(8).startswith(b"XTENSION"):
            break  # padding or trailing bytes after the last HDU, which astropy ignores
        if number >= _MAX_HDUS:
            message = f"it has more than {_MAX_HDUS} HDUs"
            raise FITSReadError(_unreadable(path, message))
        cards, header_bytes = _read_header(stream, offset, path, number)
        data_bytes = _data_bytes(cards, path, number)
        start = offset + header_bytes
        if start + data_bytes > size:
            message = (f"the file is truncated: HDU {number} declares {data_bytes} bytes of data "
                       f"and the file holds {max(size - start, 0)}")
            raise FITSReadError(_unreadable(path, message))
        offset = start + -(-data_bytes // _BLOCK) * _BLOCK
        number += 1
    stream.seek(0)


def _read_header(stream, offset, path, number):
    """The header's cards as {keyword: value text} and its size in bytes."""
    cards = {}
    stream.seek(offset)
    for block in range(_MAX_HEADER_BLOCKS):
        data = stream.read(_BLOCK)
        if len(data) < _BLOCK:
            message = f"the file is truncated in the header of HDU {number}"
            raise FITSReadError(_unreadable(path, message))
        for start in range(0, _BLOCK, 80):
            card = data[start:start + 80].decode("ascii", errors="replace")
            keyword = card[:8].rstrip()
            if number == 0 and block == 0 and start == 0 and keyword != "SIMPLE":
                message = "it is not FITS (it does not begin with SIMPLE)"
                raise FITSReadError(_unreadable(path, message))
            if keyword == "END":
                return cards, (block + 1) * _BLOCK
            if card[8:10] == "= " and keyword not in cards:
                cards[keyword] = card[10:].split("/", 1)[0].strip()
    message = f"the header of HDU {number} has no END within {_MAX_HEADER_BLOCKS * 36} cards"
    raise FITSReadError(_unreadable(path, message))


def _integer(cards, keyword, path, number, default=None, low=0, high=None):
    text = cards.get(keyword)
    if text is None:
        if default is None:
            message = f"HDU {number} lacks the mandatory keyword {keyword}"
            raise FITSReadError(_unreadable(path, message))
        return default
    try:
        value = int(text)
    except ValueError:
        message = f"HDU {number} has {keyword} = {text[:20]!r}, which is not an integer"
        raise FITSReadError(_unreadable(path, message)) from None
    if value < low or (high is not None and value > high):
        bounds = f"outside {low} to {high}" if high is not None else f"below {low}"
        message = f"HDU {number} has {keyword} = {value}, {bounds}"
        raise FITSReadError(_unreadable(path, message))
    return value


def _data_bytes(cards, path, number):
    """Bytes of the HDU's data unit, from its checked header values."""
    bitpix = _integer(cards, "BITPIX", path, number, low=-64, high=64)
    if bitpix not in _BITPIX:
        message = f"HDU {number} has BITPIX = {bitpix}, not one of {_BITPIX}"
        raise FITSReadError(_unreadable(path, message))
    naxis = _integer(cards, "NAXIS", path, number, high=_MAX_NAXIS)
    axes = [_integer(cards, f"NAXIS{k}", path, number) for k in range(1, naxis + 1)]
    _integer(cards, "TFIELDS", path, number, default=0, high=_MAX_TFIELDS)
    pcount = _integer(cards, "PCOUNT", path, number, default=0)
    gcount = _integer(cards, "GCOUNT", path, number, default=1)
    if cards.get("ZIMAGE", "").startswith("T"):
        _check_tiled_image(cards, path, number)
    if naxis == 0:
        return 0
    # Random groups (GROUPS = T, NAXIS1 = 0) hold GCOUNT groups of PCOUNT parameters and
    # an array of NAXIS2 x ... x NAXISn each.
    groups = cards.get("GROUPS", "").startswith("T") and axes[0] == 0
    elements = int(np.prod(axes[1:] if groups else axes, dtype=object))
    return abs(bitpix) // 8 * gcount * (pcount + elements)


def _check_tiled_image(cards, path, number):
    """A tile-compressed image must not decompress beyond the size limit."""
    zbitpix = _integer(cards, "ZBITPIX", path, number, low=-64, high=64)
    znaxis = _integer(cards, "ZNAXIS", path, number, high=_MAX_NAXIS)
    axes = [_integer(cards, f"ZNAXIS{k}", path, number) for k in range(1, znaxis + 1)]
    size = abs(zbitpix) // 8 * int(np.prod(axes, dtype=object))
    if size > _max_bytes():
        message = (f"HDU {number} is a compressed image of {size} bytes, more than the "
                   f"{_max_bytes()} that galaxyml.io.conf.max_fits_bytes allows")
        raise FITSReadError(_unreadable(path, message))
