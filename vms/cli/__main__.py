"""``python -m vms.cli`` runs the CLI, as ``python -m vms`` and the ``vms`` script do."""

import sys

from vms.cli import main

sys.exit(main())
