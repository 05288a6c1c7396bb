"""The ``.ingp`` codec file: magic, version, a fixed binary header, a CRC-32 and one range-coded stream.

Layout (little-endian)::

    b"INGc" | u8 version | header (HEADER fields) | u32 crc32(header + payload) | payload: u32 range-coder words

The header holds everything the decoder needs: image size and channels, the number of latent levels, both network
shapes and their weight steps (2^-frac_bits), and the integer ranges / scale indices of the Laplace tables used for
the weights and the latents. The payload codes, in order: entropy-model weights, synthesis weights, then the
latents in coding order (``decode.coding_order``: diagonal t = x + 2y, then level, then y).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import astuple, dataclass

import constriction
import numpy as np

from ..errors import InputError

MAGIC = b"INGc"
VERSION = 1
_FORMAT = "<IIBBBBBBBHHBHB"
_SIZE = struct.calcsize(_FORMAT)
MAX_PIXELS = 1 << 28


@dataclass
class Header:
    """All hyper-parameters of one file (see the module docstring)."""

    width: int
    height: int
    channels: int            # 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    n_levels: int
    syn_hidden: int
    syn_layers: int          # hidden layers of the synthesis MLP
    arm_hidden: int          # width of the entropy model's two hidden layers
    syn_frac_bits: int
    arm_frac_bits: int
    latent_range: int        # latents are coded as q - floor(mean) in -R..R
    arm_range: int           # entropy-model weights in -R..R, coded under one Laplace (mean 0) ...
    arm_scale: int           # ... of this scale index
    syn_range: int
    syn_scale: int

    def pack(self) -> bytes:
        return struct.pack(_FORMAT, *astuple(self))

    @classmethod
    def unpack(cls, data: bytes) -> "Header":
        return cls(*struct.unpack(_FORMAT, data))


def code_symbols(encoder, symbols: np.ndarray, probabilities: np.ndarray) -> None:
    """Append ``symbols`` (N,) (indices into rows of ``probabilities`` (N, K)) to a constriction range encoder."""
    if len(symbols):
        encoder.encode(symbols.astype(np.int32), categorical(), probabilities)


def categorical():
    return constriction.stream.model.Categorical(perfect=False)


def write_file(header: Header, words: np.ndarray) -> bytes:
    body = header.pack() + np.asarray(words, dtype="<u4").tobytes()
    return MAGIC + bytes([VERSION]) + body[:_SIZE] + struct.pack("<I", zlib.crc32(body)) + body[_SIZE:]


def read_file(data: bytes) -> tuple[Header, np.ndarray]:
    """(header, payload words) after checking magic, version, length and CRC; ``InputError`` otherwise."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise InputError("not an ingp codec file (wrong magic bytes)")
    if len(data) < len(MAGIC) + 1:
        raise InputError("truncated file (no version byte)")
    version = data[len(MAGIC)]
    if version != VERSION:
        raise InputError(f"unknown codec version {version} (this ingp reads version {VERSION})")
    start = len(MAGIC) + 1
    if len(data) < start + _SIZE + 4 or (len(data) - start - _SIZE - 4) % 4:
        raise InputError("truncated or corrupt file (bad length)")
    head = data[start:start + _SIZE]
    (crc,) = struct.unpack_from("<I", data, start + _SIZE)
    payload = data[start + _SIZE + 4:]
    if zlib.crc32(head + payload) != crc:
        raise InputError("corrupt or truncated file (checksum mismatch)")
    header = Header.unpack(head)
    _validate(header)
    return header, np.frombuffer(payload, dtype="<u4").astype(np.uint32)


def _validate(h: Header) -> None:
    from . import laplace

    ok = (0 < h.width and 0 < h.height and h.width * h.height <= MAX_PIXELS and 1 <= h.channels <= 4
          and 1 <= h.n_levels <= 16 and h.syn_hidden >= 1 and h.arm_hidden >= 1 and h.syn_layers <= 8
          and 0 <= h.syn_frac_bits <= 16 and 3 <= h.arm_frac_bits <= 16
          and max(h.latent_range, h.arm_range, h.syn_range) <= laplace.MAX_RANGE
          and max(h.arm_scale, h.syn_scale) < laplace.N_SCALES)
    if not ok:
        raise InputError("corrupt file (header values out of range)")
