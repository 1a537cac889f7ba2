"""Checks that a PNG file has the expected square size: check_png.py FILE SIZE."""

import struct
import sys


def png_size(path):
    """Returns (width, height) from the IHDR chunk of a PNG file."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise SystemExit(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


if __name__ == "__main__":
    path, size = sys.argv[1], int(sys.argv[2])
    width, height = png_size(path)
    if (width, height) != (size, size):
        raise SystemExit(f"{path}: {width}x{height}, expected {size}x{size}")
