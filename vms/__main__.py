"""``python -m vms`` runs the CLI."""

import sys

from vms.cli import main

sys.exit(main())
