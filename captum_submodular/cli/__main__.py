"""``python -m captum_submodular.cli``: the command line (what the console script runs)."""

import sys

from . import main

sys.exit(main())
