"""Parse Bicep files with pycep-parser and print {path: template} as JSON.

Run by the tests with .venv-infra's Python when pycep is not importable in the test venv:
    .venv-infra/bin/python tests/infra/bicep_json.py infra/bicep/main.bicep ...
"""

from __future__ import annotations

import json
import sys


def parse(paths: list[str]) -> dict[str, object]:
    from pycep import BicepParser

    parser = BicepParser()
    out: dict[str, object] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            out[path] = parser.parse(text=f.read())
    return out


def main() -> None:
    json.dump(parse(sys.argv[1:]), sys.stdout, default=str)


if __name__ == "__main__":
    main()
