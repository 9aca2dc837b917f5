"""decode_png (Pillow) against PNGs written here with every row filter, byte by byte."""

import random
import struct
import unittest
import zlib

import numpy as np

from stimloop.png import decode_png


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def encode_png(image, filters, idat_pieces=1, bit_depth=8, interlace=0):
    """A PNG of `image` (H x W uint8 or H x W x 3) with row y filtered by
    filters[y % len(filters)], the filtering written out from the PNG spec."""
    height, width = image.shape[:2]
    bpp = 1 if image.ndim == 2 else image.shape[2]
    rows = [[int(v) for v in image[y].reshape(-1)] for y in range(height)]
    raw = bytearray()
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        prior = rows[y - 1] if y > 0 else [0] * len(row)
        raw.append(kind)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind] if kind < 5 else 0
            raw.append((int(x) - predictor) % 256)
    data = zlib.compress(bytes(raw))
    step = -(-len(data) // idat_pieces)
    color_type = 0 if bpp == 1 else 2
    png = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))
    for start in range(0, len(data), step):
        png += _chunk(b"IDAT", data[start:start + step])
    return png + _chunk(b"IEND", b"")


class DecodePngTest(unittest.TestCase):

    def setUp(self):
        self.rng = np.random.default_rng(5)

    def test_gray_every_filter(self):
        image = self.rng.integers(0, 256, size=(13, 17), dtype=np.uint8)
        for kind in range(5):
            with self.subTest(filter=kind):
                decoded = decode_png(encode_png(image, [kind]))
                self.assertEqual(decoded.dtype, np.uint8)
                np.testing.assert_array_equal(decoded, image)

    def test_rgb_mixed_filters_and_split_idat(self):
        image = self.rng.integers(0, 256, size=(11, 9, 3), dtype=np.uint8)
        filters = [random.Random(3).randrange(5) for _ in range(11)]
        decoded = decode_png(encode_png(image, filters + [4, 3, 1, 2, 0], idat_pieces=4))
        self.assertEqual(decoded.shape, (11, 9, 3))
        np.testing.assert_array_equal(decoded, image)

    def test_extreme_values_wrap_modulo_256(self):
        image = np.array([[255, 0, 255, 0], [0, 255, 0, 255], [255, 255, 0, 0]], np.uint8)
        for kind in range(5):
            with self.subTest(filter=kind):
                np.testing.assert_array_equal(decode_png(encode_png(image, [kind])), image)

    def test_rejects_what_it_cannot_decode(self):
        image = np.zeros((4, 4), np.uint8)
        good = encode_png(image, [0])
        with self.assertRaisesRegex(ValueError, "cannot decode PNG"):
            decode_png(b"GIF89a" + good[6:])
        with self.assertRaisesRegex(ValueError, "only 8-bit gray"):
            decode_png(encode_png(image, [0], bit_depth=16))
        with self.assertRaisesRegex(ValueError, "cannot decode PNG"):
            decode_png(encode_png(image, [1, 2, 5]))
        corrupt = bytearray(good)
        corrupt[40] ^= 0xFF  # inside the IDAT data
        with self.assertRaisesRegex(ValueError, "cannot decode PNG"):
            decode_png(bytes(corrupt))
        with self.assertRaisesRegex(ValueError, "cannot decode PNG"):
            decode_png(good[:40])  # cut inside the IDAT chunk


if __name__ == "__main__":
    unittest.main()
