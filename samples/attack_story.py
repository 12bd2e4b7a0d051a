"""Writes samples/attack-story.jsonl: an attack on two AKS clusters, as Event Hub bodies.

The events are what the API server logs for each step (stages, subresources, response
codes, authorization annotations as Kubernetes writes them), wrapped in AKS diagnostic
records (upper-case resourceId, `properties.log` a JSON string, `time` cut to seconds),
each step once as `kube-audit` and, for writes, again as `kube-audit-admin`. `make run`
replays it beside the normal traffic of `eventhub-bodies.jsonl`; the real-Falco tests check
that each step raises its alert. Run `python -m samples.attack_story` to write it again.

aks-prod-weu: an anonymous read allowed; a CI service account's stolen token used to exec
into a payments pod, start a privileged pod mounting the node's root, bind itself to
cluster-admin, and read secrets; a ConfigMap holding cloud credentials.
aks-dev-01: a user outside the allowed list deploys; an exec whose log AKS cut short
(delivered marked `k8saudit-aks/truncated`); a ConfigMap with credentials too large for a
queue message (a claim check).
Then what only the AKS rules (rules/aks_audit_rules.yaml) see: the shared local admin
certificate lists every secret of aks-prod-weu; `az aks command invoke` starts its pod on
aks-dev-01; the stolen CI token mints a workload identity token for the payments service
account, exchangeable for its Azure identity.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "attack-story.jsonl"
START = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
SUBSCRIPTION = "0B7E1F3C-1111-4C1E-9A6E-7F2D1C0A9B01"
CLUSTERS = {"aks-prod-weu": "RG-PROD", "aks-dev-01": "RG-DEV"}
CI = "system:serviceaccount:prod:ci-deployer"
AKS_LOG_LIMIT = 16 * 1024  # where AKS cuts properties.log (Azure/AKS#4635)
Step = tuple[str, dict[str, Any], int | None]  # (cluster, audit event, cut at this many bytes)


def audit_event(step: int, *, user: str, verb: str, uri: str, resource: str, name: str = "",
                namespace: str = "", subresource: str = "", code: int = 200,
                stage: str = "ResponseComplete", request: Any = None, groups: Any = None,
                decision: str = "allow", reason: str = "", response: Any = None,
                source_ip: str = "203.0.113.66",
                user_agent: str = "kubectl/v1.30.4 (linux/amd64)") -> dict[str, Any]:
    """One audit event as the API server writes it, `step` spacing it in time (7 s a step)."""
    when = START + timedelta(seconds=7 * step)
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    ref |= {k: v for k, v in (("namespace", namespace), ("name", name),
                              ("subresource", subresource)) if v}
    event: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"attack-story/{step}")),
        "stage": stage, "requestURI": uri, "verb": verb,
        "user": {"username": user, "groups": groups or ["system:authenticated"]},
        "sourceIPs": [source_ip], "userAgent": user_agent,
        "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
    }
    if request is not None:
        event["requestObject"] = request
    if response is not None:
        event["responseObject"] = response
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    event["requestReceivedTimestamp"] = f"{stamp}.100000Z"
    event["stageTimestamp"] = f"{stamp}.180000Z"
    event["annotations"] = {"authorization.k8s.io/decision": decision,
                            "authorization.k8s.io/reason": reason}
    return event


def aks_record(cluster: str, category: str, log: str, step: int) -> dict[str, Any]:
    rid = (f"/SUBSCRIPTIONS/{SUBSCRIPTION}/RESOURCEGROUPS/{CLUSTERS[cluster]}/PROVIDERS/"
           f"MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{cluster.upper()}")
    return {"operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
            "category": category, "resourceId": rid,
            "time": (START + timedelta(seconds=7 * step)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "properties": {"log": log + "\n", "stream": "stdout", "pod": "kube-apiserver-0"}}


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "prod"}, "spec": spec}


def steps() -> list[Step]:
    """(cluster, audit event, cut at this many bytes or None), in story order."""
    creds = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
             "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    # 120 KB of certificate-like base64 that does not compress: over a queue message.
    noise = base64.b64encode(random.Random(7).randbytes(90_000)).decode()
    big = {"bundle.pem": f"-----BEGIN CERTIFICATE-----\n{noise}\n-----END CERTIFICATE-----"}
    return [
        ("aks-prod-weu", audit_event(1, user="system:anonymous", groups=["system:unauthenticated"],
                                     verb="get", uri="/api/v1/namespaces/kube-system/secrets",
                                     resource="secrets", namespace="kube-system"), None),
        ("aks-prod-weu", audit_event(2, user=CI, verb="create", stage="ResponseStarted", code=101,
                                     uri="/api/v1/namespaces/prod/pods/payments-7d9f/exec"
                                         "?command=sh&container=app&stdin=true&stdout=true"
                                         "&tty=true",
                                     resource="pods", namespace="prod", name="payments-7d9f",
                                     subresource="exec"), None),
        ("aks-prod-weu", audit_event(3, user=CI, verb="create", code=201, resource="pods",
                                     uri="/api/v1/namespaces/prod/pods", namespace="prod",
                                     name="node-debugger",
                                     request=_pod("node-debugger", hostPID=True, containers=[{
                                         "name": "shell", "image": "docker.io/library/alpine:3.20",
                                         "securityContext": {"privileged": True},
                                         "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
                                         volumes=[{"name": "host", "hostPath": {"path": "/"}}])),
         None),
        ("aks-prod-weu", audit_event(4, user=CI, verb="create", code=201,
                                     resource="clusterrolebindings", name="ci-deployer-admin",
                                     uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                                     request={"kind": "ClusterRoleBinding",
                                              "metadata": {"name": "ci-deployer-admin"},
                                              "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                          "kind": "ClusterRole",
                                                          "name": "cluster-admin"},
                                              "subjects": [{"kind": "ServiceAccount",
                                                            "name": "ci-deployer",
                                                            "namespace": "prod"}]}), None),
        ("aks-prod-weu", audit_event(5, user=CI, verb="get", resource="secrets",
                                     namespace="kube-system", name="azure-cloud-provider",
                                     uri="/api/v1/namespaces/kube-system/secrets/"
                                         "azure-cloud-provider"), None),
        ("aks-prod-weu", audit_event(6, user=CI, verb="create", code=201, resource="configmaps",
                                     namespace="prod", name="backup-settings",
                                     uri="/api/v1/namespaces/prod/configmaps",
                                     request={"kind": "ConfigMap",
                                              "metadata": {"name": "backup-settings"},
                                              "data": creds}), None),
        ("aks-dev-01", audit_event(7, user="mallory@contoso.com", verb="create", code=201,
                                   resource="deployments", namespace="default", name="miner",
                                   uri="/apis/apps/v1/namespaces/default/deployments"), None),
        ("aks-dev-01", audit_event(8, user=CI, verb="create", stage="ResponseStarted", code=101,
                                   uri="/api/v1/namespaces/default/pods/web-5c7/exec?command=bash"
                                       "&container=web&stdin=true&tty=true",
                                   resource="pods", namespace="default", name="web-5c7",
                                   subresource="exec",
                                   request={"padding": "x" * 20_000}), AKS_LOG_LIMIT),
        ("aks-dev-01", audit_event(9, user=CI, verb="create", code=201, resource="configmaps",
                                   namespace="default", name="legacy-bundle",
                                   uri="/api/v1/namespaces/default/configmaps",
                                   request={"kind": "ConfigMap",
                                            "metadata": {"name": "legacy-bundle"},
                                            "data": {**big, **creds}}), None),
        ("aks-prod-weu", audit_event(10, user="masterclient",
                                     groups=["system:masters", "system:authenticated"],
                                     verb="list", resource="secrets", uri="/api/v1/secrets"),
         None),
        ("aks-dev-01", audit_event(11, user="aksService",
                                   groups=["system:masters", "system:authenticated"],
                                   verb="create", code=201, resource="pods",
                                   namespace="aks-command",
                                   name="command-0be71db980254f398cdecce07419fbed",
                                   uri="/api/v1/namespaces/aks-command/pods",
                                   source_ip="172.31.30.22", user_agent="Go-http-client/2.0"),
         None),
        ("aks-prod-weu", audit_event(12, user=CI, verb="create", code=201,
                                     resource="serviceaccounts", namespace="prod",
                                     name="payments-wi", subresource="token",
                                     uri="/api/v1/namespaces/prod/serviceaccounts/payments-wi/"
                                         "token",
                                     request={"kind": "TokenRequest",
                                              "apiVersion": "authentication.k8s.io/v1",
                                              "spec": {"audiences":
                                                       ["api://AzureADTokenExchange"]}}),
         None),
    ]



def bodies(items: list[Step] | None = None) -> list[bytes]:
    """One Event Hub body per step (the story's unless `items` are given); writes also carry
    their kube-audit-admin copy, as AKS sends both categories when both are enabled."""
    out = []
    for step, (cluster, event, cut) in enumerate(steps() if items is None else items, start=1):
        log = json.dumps(event, separators=(",", ":"))
        log = log[:cut] if cut else log
        records = [aks_record(cluster, "kube-audit", log, step)]
        if event["verb"] not in ("get", "list", "watch"):
            records.append(aks_record(cluster, "kube-audit-admin", log, step))
        out.append(json.dumps({"records": records}, separators=(",", ":")).encode())
    return out


if __name__ == "__main__":
    OUT.write_bytes(b"\n".join(bodies()) + b"\n")
    print(f"wrote {OUT} ({len(steps())} steps)")
