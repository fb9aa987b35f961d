"""Bad files of every kind a messy folder holds, built inside the tests (nothing downloaded)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int = 0, size: int = 32) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def corrupt_body(data: bytes) -> bytes:
    """Signature and end marker intact (passes the quick check), entropy-coded data scrambled."""
    out = bytearray(data)
    out[200:-2] = b"\x00" * (len(out) - 202)
    return bytes(out)


def huge_header(data: bytes, w: int = 60000, h: int = 60000) -> bytes:
    """A JPEG whose frame header claims ``w x h`` pixels (a decompression bomb in one small file)."""
    out = bytearray(data)
    i = 2
    while i < len(out):
        marker = out[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            out[i + 5 : i + 7] = h.to_bytes(2, "big")
            out[i + 7 : i + 9] = w.to_bytes(2, "big")
            return bytes(out)
        i += 2 + int.from_bytes(out[i + 2 : i + 4], "big")
    raise AssertionError("no frame header")


# name -> (writer(path, seed), what the reason says). Every one is refused by the reader.
def write_bad(folder: Path, kinds: list[str] | None = None, seed: int = 100) -> dict[str, Path]:
    """Write one file of each bad kind into ``folder``; return ``{kind: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    good = jpeg_bytes(seed)
    made: dict[str, Path] = {}

    def put(kind: str, name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        made[kind] = folder / name

    every = kinds or list(BAD_REASONS)
    if "zero" in every:
        put("zero", "zero.jpg", b"")
    if "text" in every:
        put("text", "text.jpg", b"this is not an image, just notes\n" * 4)
    if "truncated" in every:
        put("truncated", "truncated.jpg", good[: len(good) // 2])
    if "corrupt" in every:
        put("corrupt", "corrupt.jpg", corrupt_body(good))
    if "huge" in every:
        put("huge", "huge.jpg", huge_header(good))
    if "fifo" in every:
        os.mkfifo(folder / "fifo.jpg")
        made["fifo"] = folder / "fifo.jpg"
    if "loop" in every:
        os.symlink("loop.jpg", folder / "loop.jpg")
        made["loop"] = folder / "loop.jpg"
    if "device" in every:
        os.symlink("/dev/zero", folder / "zero-device.jpg")
        made["device"] = folder / "zero-device.jpg"
    return made


BAD_REASONS = {
    "zero": "zero-byte file",
    "text": "not an image",
    "truncated": "truncated JPEG",
    "corrupt": "corrupt or truncated image",
    "huge": "pixels exceeds the limit",
    "fifo": "FIFO",
    "loop": "symbolic link loop",
    "device": "character device",
}
# Found without decoding (check="quick"); the others only by decoding.
QUICK_KINDS = ["zero", "text", "truncated", "huge", "fifo", "loop", "device"]
