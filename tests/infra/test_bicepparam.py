"""main.bicepparam sets every required parameter and documents every optional one."""

from __future__ import annotations

import re

from tests.infra.conftest import BICEP_DIR

PARAM_FILE = BICEP_DIR / "main.bicepparam"
SET = re.compile(r"^param\s+(\w+)\s*=", re.MULTILINE)
DOCUMENTED = re.compile(r"^//\s*param\s+(\w+)\s*=", re.MULTILINE)


def test_bicepparam_uses_main():
    text = PARAM_FILE.read_text()
    assert re.search(r"^using 'main\.bicep'$", text, re.MULTILINE)


def test_every_parameter_is_set_or_documented(templates):
    text = PARAM_FILE.read_text()
    params = templates["main.bicep"]["parameters"]
    required = {name for name, p in params.items() if p.get("default") is None}
    optional = set(params) - required
    set_here, documented = set(SET.findall(text)), set(DOCUMENTED.findall(text))
    assert set_here | documented <= set(params), "unknown parameter in main.bicepparam"
    assert required <= set_here, f"required but not set: {required - set_here}"
    assert optional <= documented | set_here, f"undocumented: {optional - documented}"
