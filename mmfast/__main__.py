"""`python -m mmfast` is the `mmfast` command."""

import sys

from mmfast.cli import main

sys.exit(main())
