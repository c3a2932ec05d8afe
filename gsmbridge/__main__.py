"""`python -m gsmbridge` is the same as the `gsmbridge` command."""

import sys

from gsmbridge.cli import main

sys.exit(main())
