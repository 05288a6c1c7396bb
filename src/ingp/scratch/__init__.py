"""``ingp.scratch``: the learning kit. A scalar autograd (``autograd.Value``), an MLP (``nn``), the first seed's hash
grid and the paper's grid (``grids``), per-pixel SGD with PNG frames (``train``): pure Python, no torch, no NumPy.
``numpy_model`` is the same model vectorised with NumPy; ``experiments`` holds ``ingp experiment NAME``."""

from .autograd import Value
from .grids import PaperGrid, SeedGrid
from .nn import MLP, Model

__all__ = ["MLP", "Model", "PaperGrid", "SeedGrid", "Value"]
