"""ingp: Instant Neural Graphics Primitives in Python.

tiny-cuda-nn's PyTorch API on any device (``import ingp as tcnn`` works for typical tcnn code), the
multiresolution hash encoding with tcnn's exact index math, and the configs, losses and optimisers that go with it.
"""

__version__ = "0.1.0"

from .config import load_config
from .encodings import build_encoding
from .errors import ConfigError
from .losses import build_loss
from .modules import Encoding, Network, NetworkWithInputEncoding
from .networks import build_network
from .optim import build_optimizer


def supports_jit_fusion() -> bool:
    """tcnn API: there is no CUDA JIT fusion here."""
    return False


def free_temporary_memory() -> None:
    """tcnn API: nothing to free; PyTorch's allocator owns all memory."""


__all__ = ["ConfigError", "Encoding", "Network", "NetworkWithInputEncoding", "build_encoding", "build_loss",
           "build_network", "build_optimizer", "free_temporary_memory", "load_config", "supports_jit_fusion"]
