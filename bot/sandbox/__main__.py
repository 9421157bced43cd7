"""`python -m bot.sandbox --port 8787 --time-scale 1 --auto-codes 5-20`."""

import sys

from bot.sandbox.cli import main

sys.exit(main())
