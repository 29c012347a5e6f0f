"""python -m heartbeatd: the command line (heartbeatd.cli)."""

import sys

from .cli import main

sys.exit(main())
