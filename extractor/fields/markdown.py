"""`python -m extractor.fields.markdown --markdown [FILE]`: the field table of docs/fields.md."""

from __future__ import annotations

import sys

from extractor.fields.table import FIELDS

MARKER = "<!-- README-PLUGIN-FIELDS -->"


def markdown_table() -> str:
    """The fields table of docs/fields.md, between its two markers."""
    rows = [MARKER, "| NAME | TYPE | ARG | DESCRIPTION |", "|------|------|-----|-------------|"]
    for f in FIELDS:
        kind = "Index" if f.arg_index else "Key" if f.arg_key else "None"
        if f.arg_required:
            kind += ", Required"
        ftype = f"{f.type} (list)" if f.is_list else f.type
        desc = f.desc.strip().replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{ftype}` | {kind} | {desc} |")
    rows.append(MARKER)
    return "\n".join(rows) + "\n"


def _main(argv: list[str]) -> int:
    """`--markdown` prints the table; `--markdown FILE` rewrites it in place in FILE."""
    if not argv or argv[0] != "--markdown" or len(argv) > 2:
        print("usage: python -m extractor.fields.markdown --markdown [FILE]", file=sys.stderr)
        return 2
    if len(argv) == 1:
        sys.stdout.write(markdown_table())
        return 0
    with open(argv[1], encoding="utf-8") as doc:
        before, _, rest = doc.read().partition(MARKER)
    _, _, after = rest.partition(MARKER)
    with open(argv[1], "w", encoding="utf-8") as doc:
        doc.write(before + markdown_table() + after.removeprefix("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
