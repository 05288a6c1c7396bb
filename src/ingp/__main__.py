"""``python -m ingp ...`` is the ``ingp`` command; under ``torchrun ... -m ingp`` it joins the distributed job
first (``ingp.distributed.main``)."""

import sys

from .distributed import main

sys.exit(main())
