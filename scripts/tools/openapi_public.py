"""The public origin's OpenAPI 3.1 document, merged from the functions' own.

Each function serves its own document (functions/<fn>/openapi.json at
/openapi.json). A frontend developer sees one origin instead: the Gateway
API HTTPRoute `todo-events` (knative/base/edge/httproute.yaml) sends each
path to one function, by the Gateway API's precedence (Exact first, then
the longest PathPrefix, element by element; the same reader as
check_public_routes.py). A path of a function's document is public when
that precedence sends it to that function; anything else (another
function's /healthz, callbacks and /metrics on rules without backends) is
left out.

Components keep their names when every function that uses a name means the
same thing by it; a name two functions define differently is prefixed with
each function's name (`TaskApiTask`, `AuditTask`) and the references
rewritten, so nothing silently changes meaning. Only components reachable
from the public paths are kept. Two operations with one operationId fail
the merge.

Usage: openapi_public.py REPO_ROOT OUT.json           (writes the document)
       openapi_public.py REPO_ROOT OUT.json --check   (exit 1 if OUT is stale)
"""
import copy
import difflib
import json
import pathlib
import re
import sys
import tomllib

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_public_routes import best_rule  # noqa: E402  (same precedence as the deploy check)

HTTPROUTE = "knative/base/edge/httproute.yaml"
COMPONENT_KINDS = ("schemas", "responses", "parameters", "examples", "requestBodies", "headers",
                   "securitySchemes", "links", "callbacks", "pathItems")
REF = re.compile(r"^#/components/([A-Za-z]+)/(.+)$")
REQUIRE_OPERATION_IDS = True
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class MergeError(Exception):
    pass


def rule_table(httproute_docs):
    """The HTTPRoute's rules as {name, matches, function, forwards}, the
    shape check_public_routes.best_rule reads. A rule's function is the
    `<fn>` of its URLRewrite host `<fn>.todo-<fn>.svc`, or the name of its
    plain Service backend; validate-deploy checks the rest of each rule."""
    routes = [d for d in httproute_docs if d and d.get("kind") == "HTTPRoute"
              and d["metadata"]["name"] == "todo-events"]
    if len(routes) != 1:
        raise MergeError(f"expected one HTTPRoute todo-events in {HTTPROUTE}, found {len(routes)}")
    table = []
    for i, rule in enumerate(routes[0]["spec"]["rules"]):
        refs = rule.get("backendRefs", [])
        hosts = [f["urlRewrite"].get("hostname") for f in rule.get("filters", []) if f["type"] == "URLRewrite"]
        function = None
        if refs and hosts and hosts[0]:
            m = re.fullmatch(r"([a-z-]+)\.todo-\1\.svc", hosts[0])
            function = m.group(1) if m else None
        elif refs:
            function = refs[0]["name"]
        table.append({
            "name": rule.get("name", f"rules[{i}]"),
            "matches": [(m.get("path", {}).get("type", "PathPrefix"), m.get("path", {}).get("value", "/"))
                        for m in rule.get("matches", [{}])],
            "function": function,
            "forwards": bool(refs),
        })
    return table


def public_paths(table, function, doc):
    """The paths of a function's document that the public origin sends to it."""
    kept = {}
    for path, item in doc.get("paths", {}).items():
        rule, _ = best_rule(table, path)
        if rule is not None and rule["forwards"] and rule["function"] == function:
            kept[path] = item
    return kept


def refs_in(node):
    """Every (kind, name) a node refers to with a local components $ref."""
    found = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            ref = n.get("$ref")
            if isinstance(ref, str) and (m := REF.match(ref)):
                found.add((m.group(1), m.group(2)))
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return found


def security_names(paths, doc):
    """Security schemes the kept operations use (their own or the document's)."""
    names = set()
    for item in paths.values():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            for requirement in op.get("security", doc.get("security", [])):
                names.update(requirement)
    return {("securitySchemes", n) for n in names}


def reachable(doc, paths):
    """The components the kept paths need, transitively."""
    components = doc.get("components", {})
    todo = refs_in(paths) | security_names(paths, doc)
    seen = set()
    while todo:
        kind, name = todo.pop()
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        target = components.get(kind, {}).get(name)
        if target is None:
            raise MergeError(f"#/components/{kind}/{name} is referenced but not defined")
        todo |= refs_in(target) - seen
    return seen


def meaning(kind, body):
    """What a component means for the merge: a security scheme's prose may
    differ between functions (one explains more) without changing how a
    client authenticates; any other difference is a different component."""
    if kind == "securitySchemes":
        return {k: v for k, v in body.items() if k != "description"}
    return body


def prefix(function):
    return "".join(part.capitalize() for part in function.split("-"))


def rename(node, renames):
    """A deep copy of node with its local $refs renamed."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and (m := REF.match(value)):
                kind, name = m.group(1), m.group(2)
                value = f"#/components/{kind}/{renames.get((kind, name), name)}"
            out[key] = rename(value, renames)
        return out
    if isinstance(node, list):
        return [rename(v, renames) for v in node]
    return copy.deepcopy(node)


def with_security(paths, doc):
    """Operations carry their document's top-level security explicitly, so
    the merged document needs none of its own."""
    default = doc.get("security")
    out = copy.deepcopy(paths)
    for item in out.values():
        for method in METHODS:
            if method in item and "security" not in item[method] and default is not None:
                item[method]["security"] = copy.deepcopy(default)
    return out


def merge(functions, table, version, license=None):
    """The merged document for the given {function: document}."""
    kept = {}
    needs = {}
    for function, doc in functions.items():
        kept[function] = public_paths(table, function, doc)
        needs[function] = reachable(doc, kept[function]) if kept[function] else set()

    # A component name two functions define differently gets each one's prefix.
    defined = {}
    for function, names in needs.items():
        for kind, name in names:
            defined.setdefault((kind, name), {})[function] = functions[function]["components"][kind][name]
    renames = {f: {} for f in functions}
    for (kind, name), by_function in defined.items():
        bodies = {json.dumps(meaning(kind, b), sort_keys=True) for b in by_function.values()}
        if len(bodies) > 1:
            if kind == "securitySchemes":
                raise MergeError(f"security scheme {name!r} means different things in {sorted(by_function)}")
            for function in by_function:
                renames[function][(kind, name)] = prefix(function) + name

    merged = {
        "openapi": "3.1.0",
        "info": {
            "title": "todo-events public API",
            "version": version,
            "description": (
                "Every HTTP route of the public origin, merged by `scripts/openapi-public` from the functions' "
                "own documents (`functions/<fn>/openapi.json`) and the path table of the HTTPRoute "
                "`todo-events` (knative/base/edge/httproute.yaml). Each operation names the function that "
                "serves it in `x-todo-events-function`. Errors are RFC 9457 problem+json. The WebSocket "
                "protocol of /ws/tasks and the Kafka topics are described in AsyncAPI 3.0 "
                "(shared/contracts/asyncapi.json). On the public origin this document is served at "
                "/docs/openapi.json (and rendered at /docs/); /openapi.json there is sync-gateway's own "
                "document. Locally (`./scripts/dev up`) each function listens on its own port (task-api "
                "8080, audit 8081, notification 8083, sync-gateway 8090), so a request sent from the "
                "/docs/ page on 127.0.0.1:8090 to this document's server `/` reaches only sync-gateway's "
                "paths. Generated: edit the functions' documents, not this file."
            ),
        },
        "servers": [{"url": "/", "description": "The public origin (the Gateway of knative/base/edge)."}],
        "tags": [],
        "paths": {},
        "components": {},
    }
    if license:
        merged["info"] = {"title": merged["info"]["title"], "version": version, "license": license,
                          "description": merged["info"]["description"]}
    operation_ids = {}
    missing = []
    tag_names = set()
    for function in sorted(functions):
        doc = functions[function]
        paths = rename(with_security(kept[function], doc), renames[function])
        for path, item in paths.items():
            if path in merged["paths"]:
                raise MergeError(f"{path} is in both {merged['paths'][path]['x-todo-events-function']} and {function}")
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                op["x-todo-events-function"] = function
                op_id = op.get("operationId")
                if op_id is None:
                    missing.append(f"{method.upper()} {path} ({function})")
                    continue
                if op_id in operation_ids:
                    raise MergeError(f"operationId {op_id!r} is in both {operation_ids[op_id]} and {function}")
                operation_ids[op_id] = function
                tag_names.update(op.get("tags", []))
            item["x-todo-events-function"] = function
            merged["paths"][path] = item
        for kind, name in sorted(needs[function]):
            new_name = renames[function].get((kind, name), name)
            body = rename(doc["components"][kind][name], renames[function])
            have = merged["components"].setdefault(kind, {})
            # Same meaning (see `meaning`): the one that explains more stays.
            if len(body.get("description", "")) >= len(have.get(new_name, {}).get("description", "")):
                have[new_name] = body
        for tag in doc.get("tags", []):
            if tag["name"] in tag_names and all(t["name"] != tag["name"] for t in merged["tags"]):
                merged["tags"].append(tag)
    if missing and REQUIRE_OPERATION_IDS:
        raise MergeError("operations without an operationId (viewers and client generators need one): "
                         + ", ".join(missing))
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"] = {k: dict(sorted(v.items())) for k, v in sorted(merged["components"].items())
                            if k in COMPONENT_KINDS}
    if not merged["tags"]:
        del merged["tags"]
    return merged


def load(root):
    root = pathlib.Path(root)
    table = rule_table(list(yaml.safe_load_all((root / HTTPROUTE).read_text())))
    functions = {p.parent.name: json.loads(p.read_text())
                 for p in sorted((root / "functions").glob("*/openapi.json"))}
    if not functions:
        raise MergeError("no functions/*/openapi.json found")
    package = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["package"]
    return table, functions, package["version"], {"name": package["license"], "identifier": package["license"]}


def render(document):
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--check"):
        print(__doc__, file=sys.stderr)
        return 2
    root, out = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    try:
        table, functions, version, license = load(root)
        text = render(merge(functions, table, version, license))
    except MergeError as e:
        print(f"openapi-public: {e}", file=sys.stderr)
        return 1
    if len(argv) == 4:
        current = out.read_text() if out.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(out), "merged now", lineterm="")
            print("\n".join(list(diff)[:60]), file=sys.stderr)
            print(f"{out} is not current: run scripts/openapi-public and commit it", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
