"""Fill translations into a .po file from a JSON object {msgid: msgstr} (developer helper).

``python -m tools.translate ru '{"Save": "Сохранить"}'`` — only the given entries change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    lang, mapping = argv[0], json.loads(argv[1])
    po = ROOT / "web" / "translations" / lang / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    for message in catalog:
        key = message.id if isinstance(message.id, str) else message.id[0]
        if key in mapping:
            value = mapping[key]
            message.string = tuple(value) if isinstance(value, list) else value
            message.flags.discard("fuzzy")
    with po.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, no_location=True, ignore_obsolete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
