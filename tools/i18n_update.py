"""Re-extract UI messages into web/translations/messages.pot and merge them into each .po file.

Run after changing user-visible text: ``python tools/i18n_update.py``; then translate the new
entries (``msgstr ""``) in web/translations/<lang>/LC_MESSAGES/messages.po. A test fails while any
message lacks a translation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POT = ROOT / "web" / "translations" / "messages.pot"


def main() -> int:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    str(ROOT / "babel.cfg"), "-k", "_", "-k", "gettext", "-k", "ngettext:1,2",
                    "--no-location", "--omit-header", "--sort-output", "-o", str(POT), str(ROOT)],
                   check=True, cwd=ROOT)
    for po in sorted((ROOT / "web" / "translations").glob("*/LC_MESSAGES/messages.po")):
        subprocess.run([sys.executable, "-m", "babel.messages.frontend", "update", "-i", str(POT),
                        "-o", str(po), "--no-fuzzy-matching", "--omit-header",
                        "-l", po.parent.parent.name], check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
