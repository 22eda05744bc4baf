"""`python -m collectors once|serve|refresh|smoke|admin`: the command line lives in cli.collectors."""

import sys

from cli.collectors import main

if __name__ == "__main__":
    sys.exit(main())
