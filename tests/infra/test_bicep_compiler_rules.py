"""What `az bicep build` rejects and pycep-parser accepts, checked offline.

No Bicep compiler installs here (it ships through NuGet and GitHub only), so each rule below
is one the compiler enforces; the user CI workflow (.github/workflows/deploy-artifacts.yml)
runs the real `az bicep build` and `az bicep lint` on every template.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.infra.bicep import body
from tests.infra.bicep_source import declarations, file_declarations
from tests.infra.conftest import BICEP_DIR, bicep_files

REPEATED = """
@description('one')
@allowed([
  'a'
  'b'
])
@description('two')
param x string = 'a'
"""
MULTILINE_OK = """
@description('a (paren) and an escaped \\' quote')
@allowed([
  'a'
])
param x string = 'a'

@minValue(1)
param y int = 1
"""


@pytest.mark.parametrize(("text", "expected"), [
    (REPEATED, [("x", ["description", "allowed", "description"])]),
    (MULTILINE_OK, [("x", ["description", "allowed"]), ("y", ["minValue"])]),
    ("@sys.description('d')\nparam z int\n", [("z", ["description"])]),
    ("var a = 1\n// @description('not one')\nvar b = 2\n", [("a", []), ("b", [])]),
])
def test_the_reader_keeps_every_decorator(text: str, expected: list) -> None:
    assert [(d.name, d.decorators) for d in declarations(text)] == expected


def test_no_decorator_is_repeated() -> None:
    """BCP166 (duplicate decorator): pycep keeps the last one and says nothing."""
    repeated = [f"{path.relative_to(BICEP_DIR)}:{d.line} {d.name}: {kind}"
                for path in bicep_files() for d in file_declarations(path)
                for kind, n in Counter(d.decorators).items() if n > 1]
    assert repeated == []


def test_every_parameter_is_described() -> None:
    undescribed = [f"{path.relative_to(BICEP_DIR)}:{d.line} {d.name}"
                   for path in bicep_files() for d in file_declarations(path)
                   if d.kind == "param" and "description" not in d.decorators]
    assert undescribed == []


def test_modules_get_exactly_their_parameters(templates) -> None:
    """BCP035 (a required parameter missing) and BCP037 (a parameter the module does not
    declare); and the module file exists."""
    for path, template in templates.items():
        for name, module in template.get("modules", {}).items():
            relative = module["detail"]["path"]
            target = (BICEP_DIR / Path(path).parent / relative).resolve()
            assert target.is_file(), f"{path}: module {name}: {relative}"
            declared = templates[str(target.relative_to(BICEP_DIR))]["parameters"]
            passed = set(body(module)["params"])
            required = {p for p, d in declared.items() if d["default"] is None}
            assert passed <= set(declared), (name, passed - set(declared))
            assert required <= passed, (name, required - passed)


def test_defaults_satisfy_their_own_constraints(templates) -> None:
    """A default outside @allowed, @minValue or @maxValue fails at deployment."""
    for path, template in templates.items():
        for name, param in template["parameters"].items():
            default = param["default"]
            if default is None or isinstance(default, dict):  # none, or an expression
                continue
            rules = {d["type"]: d["argument"] for d in param["decorators"]}
            if "allowed" in rules:
                values = default if isinstance(default, list) else [default]
                assert set(values) <= set(rules["allowed"]), (path, name)
            if "minValue" in rules:
                assert int(default) >= int(rules["minValue"]), (path, name)
            if "maxValue" in rules:
                assert int(default) <= int(rules["maxValue"]), (path, name)
