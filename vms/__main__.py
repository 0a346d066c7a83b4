"""``python -m vms`` runs the CLI."""

import sys

from vms.cli import main

if __name__ == "__main__":
    sys.exit(main())
