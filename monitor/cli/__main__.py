"""``python -m aemon.cli``: the ``aemon`` command."""

import sys

from aemon.cli.main import main

sys.exit(main())
