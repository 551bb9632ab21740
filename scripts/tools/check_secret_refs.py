"""Every secretKeyRef of a rendered Dapr Component must be resolvable in the
cluster (run by scripts/validate-deploy on each rendered profile).

How Dapr 1.18.2 resolves a component's secretKeyRef (github.com/dapr/dapr):

- auth.secretStore "kubernetes" or unset: the operator reads the Secret from
  the component's namespace with its own ClusterRole and sends daprd the
  values (pkg/operator/api/components.go processComponentSecrets; daprd only
  decodes them, pkg/runtime/processor/secret/secret.go).
- any other store: daprd asks that secret store component itself. For a
  `secretstores.kubernetes` component that is a GET of the Secret with the
  pod's ServiceAccount, in the component's namespace. Dapr's Helm chart grants
  that only in namespace "default" (charts/dapr/charts/dapr_rbac/templates/
  secret-reader.yaml), so elsewhere the rendered manifests must carry a
  Role/RoleBinding (or a ClusterRole bound in the namespace) letting the
  ServiceAccount `get` that Secret. Without it the read is refused, the
  component fails to initialise and daprd exits: the pod crash-loops.
- a store of another type (Vault, a cloud secret manager) cannot be checked
  offline, so it is reported too.

Usage: check_secret_refs.py RENDERED.yaml   (prints violations, exit 1)
       check_secret_refs.py --self-test
"""
import sys

import yaml

OPERATOR_RESOLVED = {"", "kubernetes"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Service"}


def pod_template(doc):
    if doc["kind"] == "Service" and not doc.get("apiVersion", "").startswith("serving.knative.dev"):
        return None
    if doc["kind"] not in WORKLOAD_KINDS:
        return None
    return doc.get("spec", {}).get("template")


def dapr_service_accounts(docs):
    """{namespace: {ServiceAccount}} of the pods that run a daprd sidecar."""
    found = {}
    for d in docs:
        template = pod_template(d)
        if not template:
            continue
        annotations = template.get("metadata", {}).get("annotations", {})
        if str(annotations.get("dapr.io/enabled", "false")).lower() != "true":
            continue
        sa = template.get("spec", {}).get("serviceAccountName") or "default"
        found.setdefault(d["metadata"].get("namespace", "default"), set()).add(sa)
    return found


def grants_get(rules, secret):
    for rule in rules or []:
        if "" not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if not {"secrets", "*"} & set(rule.get("resources", [])):
            continue
        if not {"get", "*"} & set(rule.get("verbs", [])):
            continue
        names = rule.get("resourceNames")
        if not names or secret in names:
            return True
    return False


def can_get_secret(docs, namespace, service_account, secret):
    """Whether the rendered RBAC lets system:serviceaccount:NS:SA get the
    Secret NS/secret."""
    roles = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] == "Role"}
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}

    def binds_sa(binding):
        return any(
            s.get("kind") == "ServiceAccount" and s.get("name") == service_account
            and s.get("namespace", binding["metadata"].get("namespace")) == namespace
            for s in binding.get("subjects", []) or [])

    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding") or not binds_sa(b):
            continue
        if b["kind"] == "RoleBinding" and b["metadata"].get("namespace") != namespace:
            continue
        ref = b.get("roleRef", {})
        if ref.get("kind") == "Role" and b["kind"] == "RoleBinding":
            role = roles.get((namespace, ref.get("name")))
        elif ref.get("kind") == "ClusterRole":
            role = cluster_roles.get(ref.get("name"))
        else:
            role = None
        if role and grants_get(role.get("rules"), secret):
            return True
    return False


def violations(docs):
    docs = [d for d in docs if d and "kind" in d]
    stores = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
              for d in docs if d["kind"] == "Component"
              and str(d.get("spec", {}).get("type", "")).startswith("secretstores.")}
    accounts = dapr_service_accounts(docs)
    found = []
    for d in docs:
        if d["kind"] != "Component":
            continue
        ns, name = d["metadata"].get("namespace", "default"), d["metadata"]["name"]
        store_name = (d.get("auth") or {}).get("secretStore", "") or ""
        refs = [m["secretKeyRef"] for m in d.get("spec", {}).get("metadata", []) or []
                if m.get("secretKeyRef", {}).get("name")]
        if not refs or store_name in OPERATOR_RESOLVED:
            continue
        label = f"Component {name} in {ns}"
        store = stores.get((ns, store_name))
        if store is None:
            found.append(f"{label}: secret store {store_name!r} is not a Component of {ns}")
            continue
        if store["spec"]["type"] != "secretstores.kubernetes":
            found.append(f"{label}: secret store {store_name!r} ({store['spec']['type']}) cannot be "
                         f"checked offline; use auth.secretStore: kubernetes (operator-resolved)")
            continue
        for sa in sorted(accounts.get(ns, {"default"})):
            for secret in sorted({ref["name"] for ref in refs}):
                if not can_get_secret(docs, ns, sa, secret):
                    found.append(
                        f"{label}: daprd reads Secret {secret!r} through {store_name!r} with "
                        f"ServiceAccount {sa!r}, which no rendered Role/RoleBinding lets get it "
                        f"(the pod would crash-loop); use auth.secretStore: kubernetes")
    return found


def self_test():
    """The rule on small fixtures: the crash-looping shape is caught, both
    fixes pass."""
    def component(store, ns="todo-audit"):
        c = {"apiVersion": "dapr.io/v1alpha1", "kind": "Component",
             "metadata": {"name": "pubsub", "namespace": ns},
             "spec": {"type": "pubsub.kafka", "version": "v1",
                      "metadata": [{"name": "saslPassword",
                                    "secretKeyRef": {"name": "kafka", "key": "kafka-password"}}]}}
        if store is not None:
            c["auth"] = {"secretStore": store}
        return c
    custom_store = {"kind": "Component", "metadata": {"name": "secretstore", "namespace": "todo-audit"},
                    "spec": {"type": "secretstores.kubernetes", "version": "v1"}}
    ksvc = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "audit", "namespace": "todo-audit"},
            "spec": {"template": {"metadata": {"annotations": {"dapr.io/enabled": "true"}},
                                  "spec": {"containers": [{"name": "audit"}]}}}}

    def role(names):
        return {"kind": "Role", "metadata": {"name": "dapr-secrets", "namespace": "todo-audit"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                           "resourceNames": names}]}

    def binding(sa="default", ns="todo-audit"):
        return {"kind": "RoleBinding", "metadata": {"name": "dapr-secrets", "namespace": ns},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "todo-audit"}],
                "roleRef": {"kind": "Role", "name": "dapr-secrets",
                            "apiGroup": "rbac.authorization.k8s.io"}}
    cases = [
        ("custom kubernetes store, no RBAC (crash-loops)", [component("secretstore"), custom_store, ksvc], 1),
        ("operator-resolved (kubernetes)", [component("kubernetes"), ksvc], 0),
        ("operator-resolved (no auth)", [component(None), ksvc], 0),
        ("Role limited to the named Secret", [component("secretstore"), custom_store, ksvc,
                                              role(["kafka"]), binding()], 0),
        ("Role naming other Secrets", [component("secretstore"), custom_store, ksvc,
                                       role(["app-env"]), binding()], 1),
        ("binding for another ServiceAccount", [component("secretstore"), custom_store, ksvc,
                                                role(["kafka"]), binding(sa="other")], 1),
        ("binding in another namespace", [component("secretstore"), custom_store, ksvc,
                                          role(["kafka"]), binding(ns="default")], 1),
        ("store that is not a Component", [component("vault"), ksvc], 1),
    ]
    failed = 0
    for name, docs, want in cases:
        got = len(violations(docs))
        if got != want:
            print(f"self-test {name!r}: {got} violation(s), expected {want}", file=sys.stderr)
            failed += 1
    return failed


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(1 if self_test() else 0)
    with open(sys.argv[1]) as f:
        found = violations(list(yaml.safe_load_all(f)))
    for v in found:
        print(f"  {v}", file=sys.stderr)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
