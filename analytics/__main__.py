"""`python -m analytics keys|anomalies|reconcile|review`: the command line lives in cli.analytics."""

import sys

from cli.analytics import main

if __name__ == "__main__":
    sys.exit(main())
