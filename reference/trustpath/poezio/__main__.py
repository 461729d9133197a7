"""``python -m trustpath.poezio [poezio's options]``: see :mod:`trustpath.poezio.launch`."""

import sys

from .launch import main

sys.exit(main())
