"""``python -m trustpath.client.poezio [poezio's options]``: see :mod:`trustpath.client.poezio.launch`."""

import sys

from .launch import main

sys.exit(main())
