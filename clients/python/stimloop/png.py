"""Decodes the PNG images the stimloop server sends, with Pillow.

The server encodes every stimulus with OpenCV: 8 bits per channel, grayscale
or RGB. Pillow (Debian's python3-pil, already on every PsychoPy rig) does the
decoding; this module only fixes the result's shape and type and turns every
failure into a ValueError.
"""

import io

import numpy as np
from PIL import Image

# Pillow mode -> the channel count of the result, for the modes decoded here.
_MODES = {"L": 1, "RGB": 3}


def decode_png(data):
    """Returns the pixels of an 8-bit grayscale or RGB PNG.

    Args:
      data: the PNG file's bytes.
    Returns:
      A uint8 numpy array, height x width for grayscale, height x width x 3
      (R, G, B) for RGB.
    Raises:
      ValueError: not a PNG, corrupt or truncated, or a format other than
        8-bit gray or RGB (16-bit, palette, alpha).
    """
    try:
        with Image.open(io.BytesIO(bytes(data)), formats=["PNG"]) as image:
            if image.mode not in _MODES:
                raise ValueError("PNG mode %s: only 8-bit gray (L) or RGB is decoded" % image.mode)
            image.load()
            pixels = np.asarray(image, dtype=np.uint8)
    except ValueError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError and others
        raise ValueError("cannot decode PNG: %s" % error) from error
    return pixels
