"""The `ka.*` fields of the Go `k8saudit` plugin (0.18.0), declared once.

`FIELDS` is the single table: its metadata is what `plugin_get_fields` returns, and each
entry's builder (`extractor.field_builders`) turns a (field, argument) pair into a closure
over a parsed audit event; `compile_field` checks the argument and adds the guard.
"""

from __future__ import annotations

import json
from functools import cache

from extractor.field_builders import (
    ANNOTATIONS,
    CONTAINERS,
    EPHEMERAL_CONTAINERS,
    INDEXED_LIST,
    INIT_CONTAINERS,
    LIST,
    REQUIRED_KEY,
    SPEC,
    Arg,
    Checked,
    Extract,
    ExtractError,
    Field,
    any_container_privileged,
    constant,
    container_effective,
    container_field,
    container_host_ports,
    container_images,
    container_joined,
    first_container_image,
    from_keys,
    from_keys_list,
    guarded,
    ka_field,
    rules_field,
    source_ips,
    subject_names,
    target_pod_name,
    uri_param,
    values,
    volume_hostpath_match,
    volume_types,
)

# --- the table, in upstream order --------------------------------------------------------

FIELDS: tuple[Field, ...] = (
    ka_field("ka.auditid", from_keys("auditID"), "The unique id of the audit event"),
    ka_field(
        "ka.stage",
        from_keys("stage"),
        "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)",
    ),
    ka_field(
        "ka.auth.decision",
        from_keys(*ANNOTATIONS, "authorization.k8s.io/decision"),
        "The authorization decision",
    ),
    ka_field(
        "ka.auth.reason",
        from_keys(*ANNOTATIONS, "authorization.k8s.io/reason"),
        "The authorization reason",
    ),
    ka_field(
        "ka.auth.openshift.decision",
        from_keys(*ANNOTATIONS, "authentication.openshift.io/decision"),
        "The authentication decision of the openshfit apiserver extention. Only available"
        " on openshift clusters",
    ),
    ka_field(
        "ka.validations.admission.policy.failure",
        from_keys(*ANNOTATIONS, "validation.policy.admission.k8s.io/validation_failure"),
        "The validation failure reason from a Validation Admission Policy",
    ),
    ka_field(
        "ka.security.pod.violations",
        from_keys(*ANNOTATIONS, "pod-security.kubernetes.io/audit-violations"),
        "The violation reason for pod security policy ",
    ),
    ka_field(
        "ka.auth.openshift.username",
        from_keys(*ANNOTATIONS, "authentication.openshift.io/username"),
        "The user name performing the openshift authentication operation. Only available "
        "on openshift clusters",
    ),
    ka_field("ka.user.name", from_keys("user", "username"), "The user name performing the request"),
    ka_field(
        "ka.user.groups",
        from_keys_list("user", "groups"),
        "The groups to which the user belongs",
        LIST,
    ),
    ka_field(
        "ka.impuser.name",
        from_keys("impersonatedUser", "username"),
        "The impersonated user name",
    ),
    ka_field("ka.verb", from_keys("verb"), "The action being performed"),
    ka_field("ka.uri", from_keys("requestURI"), "The request URI as sent from client to server"),
    ka_field(
        "ka.uri.param",
        uri_param,
        "The value of a given query parameter in the uri (e.g. when uri=/foo?key=val, "
        "ka.uri.param[key] is val).",
        REQUIRED_KEY,
    ),
    ka_field("ka.target.name", from_keys("objectRef", "name"), "The target object name"),
    ka_field(
        "ka.target.namespace",
        from_keys("objectRef", "namespace"),
        "The target object namespace",
    ),
    ka_field("ka.target.resource", from_keys("objectRef", "resource"),
             "The target object resource"),
    ka_field(
        "ka.target.subresource",
        from_keys("objectRef", "subresource"),
        "The target object subresource",
    ),
    ka_field("ka.target.pod.name", target_pod_name, "The target pod name"),
    ka_field(
        "ka.req.binding.subjects",
        from_keys_list("requestObject", "subjects"),
        "When the request object refers to a cluster role binding, the subject (e.g. "
        "account/users) being linked by the binding",
        LIST,
    ),
    ka_field(
        "ka.req.binding.subjects.user_names",
        subject_names("User"),
        "When the request object refers to a cluster role binding, the subject user names"
        " being linked by the binding",
        LIST,
    ),
    ka_field(
        "ka.req.binding.subjects.serviceaccount_names",
        subject_names("ServiceAccount"),
        "When the request object refers to a cluster role binding, the subject service "
        "account names being linked by the binding",
        LIST,
    ),
    ka_field(
        "ka.req.binding.subjects.serviceaccount_ns_names",
        subject_names("ServiceAccount", namespaced=True),
        "When the request object refers to a cluster role binding, the subject "
        "serviceaccount namespaced names being linked by the binding, e.g. a list "
        "containing: mynamespace:myserviceaccount",
        LIST,
    ),
    ka_field(
        "ka.req.binding.subjects.group_names",
        subject_names("Group"),
        "When the request object refers to a cluster role binding, the subject group "
        "names being linked by the binding",
        LIST,
    ),
    ka_field(
        "ka.req.binding.role",
        from_keys("requestObject", "roleRef", "name"),
        "When the request object refers to a cluster role binding, the role being linked "
        "by the binding",
    ),
    ka_field(
        "ka.req.binding.subject.has_name",
        constant("true"),
        'Deprecated, always returns "N/A". Only provided for backwards compatibility',
        REQUIRED_KEY,
    ),
    ka_field(
        "ka.req.configmap.name",
        from_keys("objectRef", "name"),
        "If the request object refers to a configmap, the configmap name",
    ),
    ka_field(
        "ka.req.configmap.obj",
        from_keys("requestObject", "data"),
        "If the request object refers to a configmap, the entire configmap object",
    ),
    ka_field(
        "ka.req.pod.containers.args",
        container_joined(CONTAINERS, "args"),
        "When the request object refers to a pod, the container's args.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.command",
        container_joined(CONTAINERS, "command"),
        "When the request object refers to a pod, the container's command.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.name",
        container_field(CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the container's names.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.image",
        container_images(CONTAINERS),
        "When the request object refers to a pod, the container's images.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.container.image",
        first_container_image(repository=False),
        "Deprecated by ka.req.pod.containers.image. Returns the image of the first container only",
    ),
    ka_field(
        "ka.req.pod.containers.image.repository",
        container_images(CONTAINERS, repository=True),
        "The same as req.container.image, but only the repository part (e.g. falcosecurity/falco).",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.container.image.repository",
        first_container_image(repository=True),
        "Deprecated by ka.req.pod.containers.image.repository. Returns the repository of "
        "the first container only",
    ),
    ka_field(
        "ka.req.pod.host_ipc",
        from_keys(*SPEC, "hostIPC"),
        "When the request object refers to a pod, the value of the hostIPC flag.",
    ),
    ka_field(
        "ka.req.pod.host_network",
        from_keys(*SPEC, "hostNetwork"),
        "When the request object refers to a pod, the value of the hostNetwork flag.",
    ),
    ka_field(
        "ka.req.container.host_network",
        from_keys(*SPEC, "hostNetwork"),
        "Deprecated alias for ka.req.pod.host_network",
    ),
    ka_field(
        "ka.req.pod.host_pid",
        from_keys(*SPEC, "hostPID"),
        "When the request object refers to a pod, the value of the hostPID flag.",
    ),
    ka_field(
        "ka.req.pod.containers.host_port",
        container_host_ports(CONTAINERS),
        "When the request object refers to a pod, all container's hostPort values.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.privileged",
        container_field(CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.container.privileged",
        any_container_privileged,
        "Deprecated by ka.req.pod.containers.privileged. Returns true if any container "
        "has privileged=true",
    ),
    ka_field(
        "ka.req.pod.containers.allow_privilege_escalation",
        container_field(CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all containers",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.read_only_fs",
        container_field(CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all containers",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.run_as_user",
        from_keys(*SPEC, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid specified in the "
        "security context for the pod. See ....containers.run_as_user for the runAsUser "
        "for individual containers",
    ),
    ka_field(
        "ka.req.pod.containers.run_as_user",
        container_field(CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all containers",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.eff_run_as_user",
        container_effective(CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no uid is specified",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.run_as_group",
        from_keys(*SPEC, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid specified in the "
        "security context for the pod. See ....containers.run_as_group for the runAsGroup"
        " for individual containers",
    ),
    ka_field(
        "ka.req.pod.containers.run_as_group",
        container_field(CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all containers",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.eff_run_as_group",
        container_effective(CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no gid is specified",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.containers.proc_mount",
        container_field(CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount types for all containers",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.role.rules",
        from_keys_list("requestObject", "rules"),
        "When the request object refers to a role/cluster role, the rules associated with the role",
        LIST,
    ),
    ka_field(
        "ka.req.role.rules.apiGroups",
        rules_field("requestObject", "rules", "apiGroups"),
        "When the request object refers to a role/cluster role, the api groups associated"
        " with the role's rules",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.role.rules.nonResourceURLs",
        rules_field("requestObject", "rules", "nonResourceURLs"),
        "When the request object refers to a role/cluster role, the non resource urls "
        "associated with the role's rules",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.role.rules.verbs",
        rules_field("requestObject", "rules", "verbs"),
        "When the request object refers to a role/cluster role, the verbs associated with"
        " the role's rules",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.role.rules.resources",
        rules_field("requestObject", "rules", "resources"),
        "When the request object refers to a role/cluster role, the resources associated "
        "with the role's rules",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.fs_group",
        from_keys(*SPEC, "securityContext", "fsGroup"),
        "When the request object refers to a pod, the fsGroup gid specified by the "
        "security context.",
    ),
    ka_field(
        "ka.req.pod.supplemental_groups",
        from_keys_list(*SPEC, "securityContext", "supplementalGroups"),
        "When the request object refers to a pod, the supplementalGroup gids specified by"
        " the security context.",
        LIST,
    ),
    ka_field(
        "ka.req.pod.containers.add_capabilities",
        container_field(CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, all capabilities to add when running "
        "the container.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.service.type",
        from_keys(*SPEC, "type"),
        "When the request object refers to a service, the service type",
    ),
    ka_field(
        "ka.req.service.ports",
        values(*SPEC, "ports"),
        "When the request object refers to a service, the service's ports",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.volumes.hostpath",
        values(*SPEC, "volumes", "hostPath", "path"),
        "When the request object refers to a pod, all hostPath paths specified for all volumes",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.volume.hostpath",
        volume_hostpath_match,
        "Deprecated by ka.req.pod.volumes.hostpath. Return true if the provided (host) "
        "path prefix is used by any volume",
        REQUIRED_KEY,
    ),
    ka_field(
        "ka.req.pod.volumes.flexvolume_driver",
        values(*SPEC, "volumes", "flexVolume", "driver"),
        "When the request object refers to a pod, all flexvolume drivers specified for all volumes",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.volumes.volume_type",
        volume_types,
        "When the request object refers to a pod, all volume types for all volumes",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.resp.name",
        from_keys("responseObject", "metadata", "name"),
        "The response object name",
    ),
    ka_field("ka.response.code", from_keys("responseStatus", "code"), "The response code"),
    ka_field(
        "ka.response.reason",
        from_keys("responseStatus", "reason"),
        "The response reason (usually present only for failures)",
    ),
    ka_field(
        "ka.useragent",
        from_keys("userAgent"),
        "The useragent of the client who made the request to the apiserver",
    ),
    ka_field(
        "ka.sourceips",
        source_ips,
        "The IP addresses of the client who made the request to the apiserver",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.cluster.name",
        from_keys(*ANNOTATIONS, "cluster_name"),
        "The name of the k8s cluster",
    ),
    ka_field(
        "ka.req.pod.initContainers.name",
        container_field(INIT_CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the init containers names.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.image",
        container_images(INIT_CONTAINERS),
        "When the request object refers to a pod, the init containers images.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.image.repository",
        container_images(INIT_CONTAINERS, repository=True),
        "The same as ka.req.pod.initContainers.image, but only the repository part (e.g. "
        "falcosecurity/falco).",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.command",
        container_joined(INIT_CONTAINERS, "command"),
        "When the request object refers to a pod, the init containers commands.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.args",
        container_joined(INIT_CONTAINERS, "args"),
        "When the request object refers to a pod, the init containers args.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.privileged",
        container_field(INIT_CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.allow_privilege_escalation",
        container_field(INIT_CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.read_only_fs",
        container_field(INIT_CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.run_as_user",
        container_field(INIT_CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.eff_run_as_user",
        container_effective(INIT_CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all init containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no uid is specified.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.run_as_group",
        container_field(INIT_CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.eff_run_as_group",
        container_effective(INIT_CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all init containers. This combines information from both the pod and container "
        "security contexts and uses 0 if no gid is specified.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.proc_mount",
        container_field(INIT_CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount type for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.add_capabilities",
        container_field(INIT_CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, the capabilities added for all init containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.initContainers.host_port",
        container_host_ports(INIT_CONTAINERS),
        "When the request object refers to a pod, all init containers hostPort values.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.name",
        container_field(EPHEMERAL_CONTAINERS, "name", strict=True),
        "When the request object refers to a pod, the ephemeral containers names.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.image",
        container_images(EPHEMERAL_CONTAINERS),
        "When the request object refers to a pod, the ephemeral containers images.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.image.repository",
        container_images(EPHEMERAL_CONTAINERS, repository=True),
        "The same as ka.req.pod.ephemeralContainers.image, but only the repository part "
        "(e.g. falcosecurity/falco).",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.command",
        container_joined(EPHEMERAL_CONTAINERS, "command"),
        "When the request object refers to a pod, the ephemeral containers commands.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.args",
        container_joined(EPHEMERAL_CONTAINERS, "args"),
        "When the request object refers to a pod, the ephemeral containers args.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.privileged",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "privileged"),
        "When the request object refers to a pod, the value of the privileged flag for "
        "all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.allow_privilege_escalation",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "allowPrivilegeEscalation"),
        "When the request object refers to a pod, the value of the "
        "allowPrivilegeEscalation flag for all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.read_only_fs",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "readOnlyRootFilesystem"),
        "When the request object refers to a pod, the value of the readOnlyRootFilesystem"
        " flag for all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.run_as_user",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "runAsUser"),
        "When the request object refers to a pod, the runAsUser uid for all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.eff_run_as_user",
        container_effective(EPHEMERAL_CONTAINERS, "runAsUser"),
        "When the request object refers to a pod, the initial uid that will be used for "
        "all ephemeral containers. This combines information from both the pod and "
        "container security contexts and uses 0 if no uid is specified.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.run_as_group",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "runAsGroup"),
        "When the request object refers to a pod, the runAsGroup gid for all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.eff_run_as_group",
        container_effective(EPHEMERAL_CONTAINERS, "runAsGroup"),
        "When the request object refers to a pod, the initial gid that will be used for "
        "all ephemeral containers. This combines information from both the pod and "
        "container security contexts and uses 0 if no gid is specified.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.proc_mount",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "procMount"),
        "When the request object refers to a pod, the procMount type for all ephemeral containers.",
        INDEXED_LIST,
    ),
    ka_field(
        "ka.req.pod.ephemeralContainers.add_capabilities",
        container_field(EPHEMERAL_CONTAINERS, "securityContext", "capabilities", "add"),
        "When the request object refers to a pod, the capabilities added for all "
        "ephemeral containers.",
        INDEXED_LIST,
    ),
)


@cache
def fields_json() -> str:
    """The JSON array `plugin_get_fields` returns."""
    return json.dumps([f.info() for f in FIELDS], separators=(",", ":"))


def compile_field(field_id: int, arg: Arg) -> Checked:
    """The extractor of field `field_id` for one argument (an int index, a str key, None),
    for any parsed JSON value."""
    return guarded(raw_extractor(field_id, arg))


def raw_extractor(field_id: int, arg: Arg) -> Extract:
    """The builder's closure for a checked argument, without the audit-event guard: for a
    caller that checks each event once (`extractor.compiled`)."""
    if not 0 <= field_id < len(FIELDS):
        raise ExtractError(f"unknown field id {field_id}")
    spec = FIELDS[field_id]
    if arg is None:
        if spec.arg_required:
            raise ExtractError(f"{spec.name} requires an argument")
    elif spec.arg_index:
        if arg.__class__ is not int or arg < 0:
            raise ExtractError(f"{spec.name} takes a non-negative index, not {arg!r}")
    elif spec.arg_key:
        if arg.__class__ is not str:
            raise ExtractError(f"{spec.name} takes a key, not {arg!r}")
    else:
        raise ExtractError(f"{spec.name} takes no argument")
    return spec.build(arg)
