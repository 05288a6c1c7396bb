"""Input encodings with tiny-cuda-nn's names, config keys and semantics.

``build_encoding(n_input_dims, config)`` turns a tcnn encoding config into an ``EncodingImpl``. Modules are imported
on first use so that ``import ingp`` stays cheap.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import EncodingImpl

# lower-case otype -> "module:Class"; the class has ``from_config(n_input_dims, config)``.
_REGISTRY = {
    "hashgrid": "grid:GridEncoding",
    "densegrid": "grid:GridEncoding",
    "tiledgrid": "grid:GridEncoding",
    "grid": "grid:GridEncoding",
    "frequency": "frequency:FrequencyEncoding",
    "sphericalharmonics": "spherical_harmonics:SphericalHarmonicsEncoding",
    "oneblob": "oneblob:OneBlobEncoding",
    "trianglewave": "triangle_wave:TriangleWaveEncoding",
    "identity": "identity:IdentityEncoding",
    "composite": "composite:CompositeEncoding",
}


def encoding_class(otype: str) -> type:
    """The implementation class for a tcnn ``otype`` (case-insensitive)."""
    try:
        target = _REGISTRY[str(otype).lower()]
    except KeyError:
        known = ", ".join(sorted({t.split(":")[1].removesuffix("Encoding") for t in _REGISTRY.values()}))
        raise ConfigError(f"unknown encoding otype {otype!r} (known: HashGrid, DenseGrid, TiledGrid, {known})") from None
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def build_encoding(n_input_dims: int, config: dict) -> EncodingImpl:
    """Build the encoding a tcnn config describes. Raises ``ConfigError`` naming any bad key or value."""
    if not isinstance(config, dict) or "otype" not in config:
        raise ConfigError(f"an encoding config must be a JSON object with an 'otype' key, got {config!r}")
    if not isinstance(n_input_dims, int) or n_input_dims < 1:
        raise ConfigError(f"n_input_dims must be a positive integer, got {n_input_dims!r}")
    return encoding_class(config["otype"]).from_config(n_input_dims, config)


def check_keys(config: dict, allowed: set[str], where: str) -> None:
    """Raise ``ConfigError`` naming the first key of ``config`` not in ``allowed`` (``otype`` is always allowed)."""
    for key in config:
        if key != "otype" and key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


__all__ = ["EncodingImpl", "build_encoding", "check_keys", "encoding_class"]
