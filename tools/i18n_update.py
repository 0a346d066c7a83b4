"""Re-extract UI messages into web/translations/messages.pot and merge them into each .po file.

Run after changing user-visible text: ``python -m tools.i18n_update``; then translate the new
entries (``msgstr ""``) in web/translations/<lang>/LC_MESSAGES/messages.po. A test fails while any
message lacks a translation.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
POT = ROOT / "web" / "translations" / "messages.pot"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extract_catalog(root: Path = ROOT) -> Catalog:
    with (root / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    catalog = Catalog(project="VMS")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(root), method_map, options_map, keywords=KEYWORDS):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def main() -> int:
    template = extract_catalog()
    with POT.open("wb") as fh:
        write_po(fh, template, omit_header=True, sort_output=True, no_location=True)
    for po in sorted((ROOT / "web" / "translations").glob("*/LC_MESSAGES/messages.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as fh:
            write_po(fh, catalog, sort_output=True, no_location=True, ignore_obsolete=True)
        missing = [m.id for m in catalog if m.id and not m.string]
        print(f"{po.relative_to(ROOT)}: {len(missing)} untranslated", *missing, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
