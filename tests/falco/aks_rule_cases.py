"""For each rule of rules/aks_audit_rules.yaml, events that must raise it and near misses
that must not, as AKS writes them (diagnostic records, `properties.log` a JSON string), so
one file replay through real Falco checks them all.

The shapes follow what AKS and its components are documented or seen to write (sources in
the rules file and docs/aks-rules.md): aksService's own requests (published kube-audit and
kube-audit-admin records), the local-account certificate subject (Azure/AKS#877), run command pods
(command-<32 hex> in aks-command, Azure/azure-cli#23203), "skipped-too-big-size-object"
(Azure Monitor AKSAudit reference), guard's verdicts (kubeguard/guard), the workload
identity audience (azure-workload-identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from samples.attack_story import AKS_LOG_LIMIT, Step, audit_event

PROD, DEV = "aks-prod-weu", "aks-dev-01"
ALICE = "alice@contoso.com"  # an Entra ID user: groups are object IDs
ALICE_GROUPS = ["5f3c2b1a-1111-4d2e-9c8b-7a6f5e4d3c2b", "system:authenticated"]
MASTERS = ["system:masters", "system:authenticated"]
KUBE_SYSTEM_SA = ["system:serviceaccounts", "system:serviceaccounts:kube-system"]
AZURE_DENIED = "User does not have access to the resource in Azure. Update role assignment " \
               "to allow access."
AZURE_ALLOWED = "Access allowed by Azure RBAC"
NO_OPINION = "Azure does not have opinion for this user."
SKIPPED = "skipped-too-big-size-object"
WI_AUDIENCE = "api://AzureADTokenExchange"
NODE = "system:node:aks-nodepool1-12345678-vmss000000"
CI = "system:serviceaccount:prod:ci-deployer"
RUN_POD = "command-3f7a0b7965644957adb078df4829630e"


@dataclass(frozen=True)
class Case:
    rule: str
    fires: bool  # True: a true positive; False: a near miss that must not raise `rule`
    what: str
    cluster: str
    event: dict[str, Any]
    cut: int | None = None  # AKS cut its log here

    @property
    def audit_id(self) -> str:
        return str(self.event["auditID"])

    @property
    def step(self) -> Step:
        return (self.cluster, self.event, self.cut)


def _token_request(audiences: list[str]) -> dict[str, Any]:
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "spec": {"audiences": audiences, "expirationSeconds": 3600}}


def _labelled(kind: str, name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}}


def cases() -> list[Case]:
    n = iter(range(100, 1000))

    def ev(**kw: Any) -> dict[str, Any]:
        return audit_event(next(n), **kw)

    return [
        # 1. AKS Local Account Used
        Case("AKS Local Account Used", True, "the local admin certificate lists secrets", PROD,
             ev(user="masterclient", groups=MASTERS, verb="list", resource="secrets",
                namespace="kube-system", uri="/api/v1/namespaces/kube-system/secrets")),
        Case("AKS Local Account Used", True, "a minted system:masters certificate", DEV,
             ev(user="backup-operator", groups=MASTERS, verb="get", resource="nodes",
                uri="/api/v1/nodes")),
        Case("AKS Local Account Used", False, "aksService renews a kube-system lease", PROD,
             ev(user="aksService", groups=MASTERS, verb="update", resource="leases",
                namespace="kube-system", name="external-attacher-leader-disk-csi-azure-com",
                uri="/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"
                    "external-attacher-leader-disk-csi-azure-com",
                source_ip="172.31.30.22", user_agent="Go-http-client/2.0")),
        Case("AKS Local Account Used", False, "an Entra ID user", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="list", resource="pods",
                namespace="prod", uri="/api/v1/namespaces/prod/pods", reason=AZURE_ALLOWED)),
        # 2. AKS Run Command Used
        Case("AKS Run Command Used", True, "az aks command invoke starts its pod", DEV,
             ev(user="aksService", groups=MASTERS, verb="create", code=201, resource="pods",
                namespace="aks-command", name=RUN_POD,
                uri="/api/v1/namespaces/aks-command/pods", user_agent="Go-http-client/2.0")),
        Case("AKS Run Command Used", False, "a pod named command-* elsewhere", DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="create", code=201, resource="pods",
                namespace="default", name="command-runner",
                uri="/api/v1/namespaces/default/pods")),
        Case("AKS Run Command Used", False, "the run command pod is cleaned up", DEV,
             ev(user="aksService", groups=MASTERS, verb="delete", resource="pods",
                namespace="aks-command", name=RUN_POD,
                uri=f"/api/v1/namespaces/aks-command/pods/{RUN_POD}")),
        # 3. AKS Audit Object Skipped On Sensitive Change
        Case("AKS Audit Object Skipped On Sensitive Change", True,
             "a ClusterRoleBinding too big to log", PROD,
             ev(user=CI, verb="patch", resource="clusterrolebindings", name="ops-admins",
                uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ops-admins",
                request=SKIPPED, response=SKIPPED)),
        Case("AKS Audit Object Skipped On Sensitive Change", True,
             "a DaemonSet whose response was skipped", DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="create", code=201,
                resource="daemonsets", namespace="default", name="agent",
                uri="/apis/apps/v1/namespaces/default/daemonsets",
                request=_labelled("DaemonSet", "agent", "default", {}), response=SKIPPED)),
        Case("AKS Audit Object Skipped On Sensitive Change", False,
             "aksService labels a node, both objects skipped (as AKS logs it)", PROD,
             ev(user="aksService", groups=MASTERS, verb="patch", resource="nodes",
                name="aks-agentpool-20062077-vmss000002", source_ip="127.0.0.1",
                uri="/api/v1/nodes/aks-agentpool-20062077-vmss000002"
                    "?fieldManager=kubectl-label",
                user_agent="kubectl/v1.24.6 (linux/amd64) kubernetes/6c23b67",
                request=SKIPPED, response=SKIPPED)),
        Case("AKS Audit Object Skipped On Sensitive Change", False,
             "a ClusterRoleBinding logged in full", PROD,
             ev(user=CI, verb="patch", resource="clusterrolebindings", name="ops-viewers",
                uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/ops-viewers",
                request={"metadata": {"labels": {"team": "ops"}}})),
        # 3. AKS Audit Event Truncated
        Case("AKS Audit Event Truncated", True, "a DaemonSet create cut short by AKS", DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="create", code=201,
                resource="daemonsets", namespace="default", name="miner",
                uri="/apis/apps/v1/namespaces/default/daemonsets",
                request={"padding": "x" * 20_000}), cut=AKS_LOG_LIMIT),
        Case("AKS Audit Event Truncated", False, "a list cut short (a read)", DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="list", resource="pods",
                namespace="default", uri="/api/v1/namespaces/default/pods",
                response={"padding": "x" * 20_000}), cut=AKS_LOG_LIMIT),
        Case("AKS Audit Event Truncated", False, "the same create, whole", DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="create", code=201,
                resource="daemonsets", namespace="default", name="miner-2",
                uri="/apis/apps/v1/namespaces/default/daemonsets")),
        # 4. AKS Azure RBAC Denied Privileged Request
        Case("AKS Azure RBAC Denied Privileged Request", True, "exec denied by Azure RBAC",
             PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="create", code=403, resource="pods",
                namespace="prod", name="payments-7d9f", subresource="exec",
                uri="/api/v1/namespaces/prod/pods/payments-7d9f/exec?command=sh",
                decision="forbid", reason=AZURE_DENIED)),
        Case("AKS Azure RBAC Denied Privileged Request", True, "a secret read denied", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="get", code=403, resource="secrets",
                namespace="kube-system", name="azure-cloud-provider",
                uri="/api/v1/namespaces/kube-system/secrets/azure-cloud-provider",
                decision="forbid", reason=AZURE_DENIED)),
        Case("AKS Azure RBAC Denied Privileged Request", False,
             "a service account denied by Kubernetes RBAC (Azure has no opinion)", PROD,
             ev(user=CI, verb="create", code=403, resource="pods", namespace="prod",
                name="payments-7d9f", subresource="exec",
                uri="/api/v1/namespaces/prod/pods/payments-7d9f/exec?command=sh",
                decision="forbid", reason=NO_OPINION)),
        Case("AKS Azure RBAC Denied Privileged Request", False, "a pod list denied", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="list", code=403, resource="pods",
                namespace="prod", uri="/api/v1/namespaces/prod/pods",
                decision="forbid", reason=AZURE_DENIED)),
        # 4. AKS Azure RBAC Denied
        Case("AKS Azure RBAC Denied", True, "a pod list denied by Azure RBAC", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="list", code=403, resource="pods",
                namespace="payments", uri="/api/v1/namespaces/payments/pods",
                decision="forbid", reason=AZURE_DENIED)),
        Case("AKS Azure RBAC Denied", False, "a pod list allowed by Azure RBAC", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="list", resource="pods",
                namespace="payments", uri="/api/v1/namespaces/payments/pods",
                reason=AZURE_ALLOWED)),
        # 5. AKS Managed Object Modified
        Case("AKS Managed Object Modified", True, "the konnectivity agent patched", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="patch", resource="deployments",
                namespace="kube-system", name="konnectivity-agent",
                uri="/apis/apps/v1/namespaces/kube-system/deployments/konnectivity-agent")),
        Case("AKS Managed Object Modified", True, "a Gatekeeper constraint template deleted",
             DEV,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="delete", resource="constrainttemplates",
                name="k8sazurev2blockhostnamespace",
                uri="/apis/templates.gatekeeper.sh/v1/constrainttemplates/"
                    "k8sazurev2blockhostnamespace")),
        Case("AKS Managed Object Modified", True, "an Azure Policy constraint deleted", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="delete",
                resource="k8sazurev2noprivilege", name="azurepolicy-k8sazurev2noprivilege-1f2e",
                uri="/apis/constraints.gatekeeper.sh/v1beta1/k8sazurev2noprivilege/"
                    "azurepolicy-k8sazurev2noprivilege-1f2e")),
        Case("AKS Managed Object Modified", True, "an object labelled managedby=aks", DEV,
             ev(user=CI, verb="update", resource="deployments", namespace="kube-system",
                name="extension-operator",
                uri="/apis/apps/v1/namespaces/kube-system/deployments/extension-operator",
                request=_labelled("Deployment", "extension-operator", "kube-system",
                                  {"kubernetes.azure.com/managedby": "aks"}))),
        Case("AKS Managed Object Modified", False, "aksService updates the konnectivity agent",
             PROD,
             ev(user="aksService", groups=MASTERS, verb="update", resource="deployments",
                namespace="kube-system", name="konnectivity-agent",
                uri="/apis/apps/v1/namespaces/kube-system/deployments/konnectivity-agent")),
        Case("AKS Managed Object Modified", False, "the deployment controller writes status",
             PROD,
             ev(user="system:serviceaccount:kube-system:deployment-controller",
                groups=KUBE_SYSTEM_SA, verb="update", resource="deployments",
                namespace="kube-system", name="coredns", subresource="status",
                uri="/apis/apps/v1/namespaces/kube-system/deployments/coredns/status")),
        Case("AKS Managed Object Modified", False, "the azure-policy add-on syncs a constraint",
             PROD,
             ev(user="system:serviceaccount:kube-system:azure-policy", groups=KUBE_SYSTEM_SA,
                verb="update", resource="k8sazurev2noprivilege",
                name="azurepolicy-k8sazurev2noprivilege-1f2e",
                uri="/apis/constraints.gatekeeper.sh/v1beta1/k8sazurev2noprivilege/"
                    "azurepolicy-k8sazurev2noprivilege-1f2e")),
        Case("AKS Managed Object Modified", False, "a user's own deployment", PROD,
             ev(user=ALICE, groups=ALICE_GROUPS, verb="patch", resource="deployments",
                namespace="prod", name="konnectivity-agent",
                uri="/apis/apps/v1/namespaces/prod/deployments/konnectivity-agent")),
        # 7. AKS Workload Identity Token Requested
        Case("AKS Workload Identity Token Requested", True,
             "a service account mints its neighbour's Entra-exchangeable token", PROD,
             ev(user=CI, verb="create", code=201, resource="serviceaccounts",
                namespace="prod", name="payments-wi", subresource="token",
                uri="/api/v1/namespaces/prod/serviceaccounts/payments-wi/token",
                request=_token_request([WI_AUDIENCE]))),
        Case("AKS Workload Identity Token Requested", False,
             "the kubelet requests it for the pod", PROD,
             ev(user=NODE, groups=["system:nodes", "system:authenticated"], verb="create",
                code=201, resource="serviceaccounts", namespace="prod", name="payments-wi",
                subresource="token",
                uri="/api/v1/namespaces/prod/serviceaccounts/payments-wi/token",
                request=_token_request([WI_AUDIENCE]), user_agent="kubelet/v1.30.4")),
        Case("AKS Workload Identity Token Requested", False,
             "a token for the API server's audience", PROD,
             ev(user=CI, verb="create", code=201, resource="serviceaccounts",
                namespace="prod", name="ci-deployer", subresource="token",
                uri="/api/v1/namespaces/prod/serviceaccounts/ci-deployer/token",
                request=_token_request(["https://kubernetes.default.svc"]))),
    ]


def _lease(name: str, source_ip: str, user_agent: str) -> dict[str, Any]:
    """aksService renewing a kube-system lease, as AKS's CSI drivers do all day."""
    return {"user": "aksService", "groups": MASTERS, "verb": "update", "resource": "leases",
            "namespace": "kube-system", "name": name,
            "uri": f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}",
            "source_ip": source_ip, "user_agent": user_agent}


# 6. Noise: AKS's own traffic, each modelled on a published AKS record, and the official
# rule that alerts on it without the overrides.
NOISE = [
    ("Disallowed K8s User", "aksService renews a CSI lease (Azure Monitor schema test data)",
     PROD, _lease("external-attacher-leader-disk-csi-azure-com", "172.31.30.22",
                  "Go-http-client/2.0")),
    ("Disallowed K8s User", "aksService's csi-resizer renews its lease (Sumo Logic AKS docs)",
     DEV, _lease("external-resizer-file-csi-azure-com", "172.31.35.83",
                 "csi-resizer/v0.0.0 (linux/amd64) kubernetes/$Format")),
    ("Disallowed K8s User", "aksService's cluster-autoscaler evicts a pod (kube-audit-admin)",
     PROD,
     {"user": "aksService", "groups": MASTERS, "verb": "create", "code": 429,
      "resource": "pods", "namespace": "payments", "name": "api-58ff578d97-gsxxc",
      "subresource": "eviction",
      "uri": "/api/v1/namespaces/payments/pods/api-58ff578d97-gsxxc/eviction",
      "source_ip": "172.31.16.220",
      "user_agent": "cluster-autoscaler/v0.0.0 (linux/amd64) kubernetes/$Format"}),
    ("Create Disallowed Namespace", "run command creates its namespace", DEV,
     {"user": "aksService", "groups": MASTERS, "verb": "create", "code": 201,
      "resource": "namespaces", "name": "aks-command", "uri": "/api/v1/namespaces"}),
]

def noise_events() -> list[tuple[str, str, Step]]:
    """(official rule, what, step) for each piece of AKS's own traffic."""
    return [(rule, what, (cluster, audit_event(900 + i, **kw), None))
            for i, (rule, what, cluster, kw) in enumerate(NOISE)]
