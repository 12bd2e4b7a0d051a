"""KQL checked by Kusto's own language service (harness/kql.js, npm
`@kusto/language-service-next`): the alert rules' and the dashboard's queries against the
Application Insights table they read, as Log Analytics declares it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from harness.host import ROOT

# Log Analytics' AppMetrics (learn.microsoft.com, Azure Monitor Logs table reference).
APP_METRICS = ("(TenantId:string, TimeGenerated:datetime, Name:string, Sum:real, "
               "ItemCount:int, Min:real, Max:real, Properties:dynamic, AppRoleName:string, "
               "AppRoleInstance:string, AppVersion:string, SDKVersion:string, "
               "OperationId:string, OperationName:string, ParentId:string, "
               "ResourceGUID:string, SourceSystem:string, Type:string, _ResourceId:string)")


@dataclass(frozen=True, slots=True)
class Checked:
    errors: list[str]
    columns: dict[str, str]  # the result's schema: name -> Kusto type


def check(queries: Sequence[str]) -> list[Checked]:
    request = json.dumps({"tables": {"AppMetrics": APP_METRICS}, "queries": list(queries)})
    done = subprocess.run(["node", str(ROOT / "harness" / "kql.js")], input=request,
                          capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    return [Checked(r["errors"], r["columns"]) for r in json.loads(done.stdout)]
