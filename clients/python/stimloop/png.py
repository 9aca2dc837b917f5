"""A small PNG decoder for the images the stimloop server sends.

The server encodes every stimulus with OpenCV: 8 bits per channel, grayscale
or RGB, not interlaced. This module decodes exactly that (any of the five
PNG row filters, any IDAT chunking) with zlib and numpy only, so the client
needs no imaging library. Anything else (16-bit, palette, alpha, interlaced)
is rejected with a ValueError rather than decoded wrongly.
"""

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels, for the colour types decoded here.
_CHANNELS = {0: 1, 2: 3}


def decode_png(data):
    """Returns the pixels of an 8-bit grayscale or RGB PNG.

    Args:
      data: the PNG file's bytes.
    Returns:
      A uint8 numpy array, height x width for grayscale, height x width x 3
      (R, G, B) for RGB.
    Raises:
      ValueError: not a PNG, corrupt, or a format other than 8-bit gray/RGB
        non-interlaced.
    """
    data = bytes(data)
    if data[:8] != _SIGNATURE:
        raise ValueError("not a PNG: bad signature")
    header = None
    idat = []
    pos = 8
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated PNG: no IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc_bytes = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError("truncated PNG chunk %r" % kind)
        if zlib.crc32(kind + body) != struct.unpack(">I", crc_bytes)[0]:
            raise ValueError("PNG chunk %r fails its CRC" % kind)
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, bit_depth, color_type, compression, filter_method, interlace = header
    if bit_depth != 8 or color_type not in _CHANNELS:
        raise ValueError("unsupported PNG: bit depth %d, colour type %d (want 8-bit gray "
                         "or RGB)" % (bit_depth, color_type))
    if compression != 0 or filter_method != 0 or interlace != 0:
        raise ValueError("unsupported PNG: interlaced or unknown compression/filter method")
    channels = _CHANNELS[color_type]
    stride = width * channels
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != height * (stride + 1):
        raise ValueError("corrupt PNG: %d bytes of image data, expected %d"
                         % (len(raw), height * (stride + 1)))
    pixels = _unfilter(raw, height, stride, channels)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def _unfilter(raw, height, stride, bpp):
    """Undoes the per-row PNG filters (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth).

    None and Sub rows do not depend on the row above, so they are undone all
    at once (OpenCV writes Sub rows only); Up, Average and Paeth rows follow,
    top to bottom, each after the row it depends on.
    """
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    kinds = rows[:, 0]
    if kinds.size and kinds.max() > 4:
        y = int(np.argmax(kinds > 4))
        raise ValueError("corrupt PNG: row %d has filter type %d" % (y, kinds[y]))
    out = rows[:, 1:].copy()
    sub = kinds == 1
    if sub.any():  # Sub: a running sum per channel along the row, modulo 256.
        out[sub] = np.cumsum(out[sub].reshape(-1, stride // bpp, bpp), axis=1,
                             dtype=np.uint8).reshape(-1, stride)
    zeros = np.zeros(stride, dtype=np.uint8)
    for y in np.flatnonzero(kinds >= 2):
        prior = out[y - 1] if y > 0 else zeros
        if kinds[y] == 2:  # Up
            out[y] += prior
        elif kinds[y] == 3:  # Average: sequential along the row.
            out[y] = _unfilter_average(out[y].tobytes(), prior.tobytes(), bpp)
        else:  # Paeth: sequential along the row.
            out[y] = _unfilter_paeth(out[y].tobytes(), prior.tobytes(), bpp)
    return out


def _unfilter_average(line, prior, bpp):
    cur = bytearray(line)
    for i in range(bpp):
        cur[i] = (cur[i] + (prior[i] >> 1)) & 0xFF
    for i in range(bpp, len(cur)):
        cur[i] = (cur[i] + ((cur[i - bpp] + prior[i]) >> 1)) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def _unfilter_paeth(line, prior, bpp):
    cur = bytearray(line)
    for i in range(bpp):  # No left neighbours: the predictor is the byte above.
        cur[i] = (cur[i] + prior[i]) & 0xFF
    for i in range(bpp, len(cur)):
        a = cur[i - bpp]
        b = prior[i]
        c = prior[i - bpp]
        pa = b - c if b > c else c - b  # |p - a| with p = a + b - c
        pb = a - c if a > c else c - a  # |p - b|
        pc = a + b - c - c
        if pc < 0:
            pc = -pc  # |p - c|
        if pa <= pb and pa <= pc:
            pred = a
        elif pb <= pc:
            pred = b
        else:
            pred = c
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)
