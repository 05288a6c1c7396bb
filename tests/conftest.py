"""Test-session setup that must happen before anything imports triton.

Without a GPU the Triton kernels run on CPU tensors through Triton's interpreter, which reads ``TRITON_INTERPRET``
when triton is first imported; so it is set here, before any test module imports ingp's Triton kernels.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
