"""`python -m bot.demo`: the same as `daisybot demo`."""

import sys

from bot.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
