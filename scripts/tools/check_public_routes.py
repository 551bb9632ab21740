"""The public origin's path table (HTTPRoute todo-events, knative/base/edge)
must agree with the routes the functions really register (run by
scripts/validate-deploy on each rendered profile), so neither can drift:

1. Every match of a forwarding rule reaches at least one route of the
   function that rule forwards to (no dead or misdirected prefix).
2. Every public route a function registers (/api/..., /ws/...) is matched,
   by the Gateway API's precedence, by a rule forwarding to that function;
   any other path a rule claims must reach its own function too.
3. Every callback or metrics route (/dapr, /events, /job, /metrics) is
   matched by a rule without backends, which the Gateway answers itself.

A rule's function: a backendRef to the Knative ingress (exactly
KNATIVE_INGRESS) with a URLRewrite hostname `<fn>.todo-<fn>.svc` (a Knative
Service <fn> in todo-<fn> must exist; no cluster domain, so any cluster's
works), or a backendRef to a plain Service of that name in todo-<fn> (the
sync gateway). Every rule that forwards sets Strict-Transport-Security.

The routes are read from the functions' sources: the first argument of
every `.route(`, `.route_service(` and `.nest_service(` call outside tests,
a string literal or a `&str` const (resolved by name in the function's and
the shared crates' sources; an unresolved one fails the check), plus the
health routes every function mounts. Precedence and matching follow
gateway-api apis/v1/httproute_types.go: Exact first, then the longest
PathPrefix, matched path element by path element.

Usage: check_public_routes.py RENDERED.yaml REPO_ROOT   (prints violations, exit 1)
       check_public_routes.py --self-test
"""
import pathlib
import re
import sys

import yaml

# Every call that mounts something at a path; each must be read (below).
MOUNT_CALL = re.compile(r"\.(route|route_service|nest_service|nest)\(")
# Its first argument when that is a literal or a const path.
FIRST_ARG = re.compile(r"\s*(\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_:]*)\s*,")
LINE_COMMENT = re.compile(r"//[^\n]*")
STR_CONST = re.compile(r"const\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*\"([^\"]*)\"")
# Mounted by every function through service::health::routes.
HEALTH_ROUTES = ["/healthz", "/readyz", "/metrics"]
PUBLIC = ("/api/", "/ws/")
INTERNAL = ("/dapr/", "/events/", "/job/")
CATCH_ALL = ("PathPrefix", "/")
# Kourier's cluster-local ingress (namespace, name, port): knative/base/edge/
# httproute.yaml says why the Knative rules go through it. Another
# networking layer changes it here and in that file together.
KNATIVE_INGRESS = ("kourier-system", "kourier-internal", 80)
HSTS = "Strict-Transport-Security"


def strip_tests(text):
    """Drops `#[cfg(test)] mod x { ... }` blocks (they sit at a file's end)."""
    m = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text


def sources(root, crate_dir):
    for path in sorted((root / crate_dir).rglob("*.rs")):
        name = path.name
        if name in ("tests.rs", "testing.rs") or name.endswith("_tests.rs") or "tests" in path.parts[-2:-1]:
            continue
        yield path, LINE_COMMENT.sub("", strip_tests(path.read_text()))


def registered_routes(root, function):
    """{path: source file} for every route the function registers."""
    consts = {}
    crates = [f"functions/{function}/src"] + [str(p.relative_to(root)) for p in sorted((root / "shared").glob("*/src"))]
    for crate in crates:
        for _, text in sources(root, crate):
            for name, value in STR_CONST.findall(text):
                consts.setdefault(name, set()).add(value)
    routes, unresolved = {}, []
    for path, text in sources(root, f"functions/{function}/src"):
        for call in MOUNT_CALL.finditer(text):
            m = FIRST_ARG.match(text, call.end())
            if call.group(1) == "nest" or m is None:
                line = text.count("\n", 0, call.start()) + 1
                unresolved.append(f"{path.relative_to(root)}:{line}: .{call.group(1)}(...) cannot be read "
                                  "(use a literal or a &str const path, and .route rather than .nest)")
                continue
            arg = m.group(1)
            if arg.startswith('"') and arg.endswith('"'):
                routes[arg[1:-1]] = path.name
                continue
            name = arg.split("::")[-1]
            values = consts.get(name, set())
            if len(values) == 1:
                routes[next(iter(values))] = path.name
            else:
                unresolved.append(f"{path.relative_to(root)}: route path {arg!r} is not a literal or one &str const")
    for r in HEALTH_ROUTES:
        routes.setdefault(r, "service::health")
    return routes, unresolved


def matches(match, path):
    kind, value = match
    if kind == "Exact":
        return path == value
    prefix = value.rstrip("/").split("/")[1:] if value != "/" else []
    return path.split("/")[1 : 1 + len(prefix)] == prefix


def best_rule(table, path):
    """(rule, match) the Gateway picks for a path, or (None, None)."""
    hits = [(rule, m) for rule in table for m in rule["matches"] if matches(m, path)]
    if not hits:
        return None, None
    return max(hits, key=lambda h: (h[1][0] == "Exact", len(h[1][1])))


def route_table(docs):
    """The rules of HTTPRoute todo-events as {name, matches, function}."""
    fail = []
    routes = [d for d in docs if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == "todo-events"]
    if len(routes) != 1:
        return [], [f"expected one HTTPRoute todo-events, found {len(routes)}"]
    ksvcs = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
             if d["kind"] == "Service" and d["apiVersion"].startswith("serving.knative.dev")}
    services = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
                if d["kind"] == "Service" and d["apiVersion"] == "v1"}
    table = []
    for i, rule in enumerate(routes[0]["spec"]["rules"]):
        name = rule.get("name", f"rules[{i}]")
        found = [(m.get("path", {}).get("type", "PathPrefix"), m.get("path", {}).get("value", "/"))
                 for m in rule.get("matches", [{}])]
        refs = rule.get("backendRefs", [])
        filters = rule.get("filters", [])
        hosts = [f["urlRewrite"].get("hostname") for f in filters if f["type"] == "URLRewrite"]
        function = None
        if refs and not sets_hsts(filters):
            fail.append(f"rule {name}: forwards without setting {HSTS} (ResponseHeaderModifier)")
        if len(refs) > 1:
            fail.append(f"rule {name}: one backend per rule expected")
        elif refs and hosts and hosts[0]:
            ref = refs[0]
            got = (ref.get("namespace", routes[0]["metadata"]["namespace"]), ref["name"], ref.get("port"))
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "" or got != KNATIVE_INGRESS:
                fail.append(f"rule {name}: a Knative Service is reached through the Knative ingress "
                            f"{KNATIVE_INGRESS[0]}/{KNATIVE_INGRESS[1]}:{KNATIVE_INGRESS[2]}, not "
                            f"{got[0]}/{got[1]}:{got[2]}")
            m = re.fullmatch(r"([a-z-]+)\.todo-\1\.svc", hosts[0])
            if not m or (f"todo-{m.group(1)}", m.group(1)) not in ksvcs:
                fail.append(f"rule {name}: host {hosts[0]!r} is no Knative Service <fn>.todo-<fn>.svc of this project")
            else:
                function = m.group(1)
        elif refs:
            ref = refs[0]
            ns = ref.get("namespace", routes[0]["metadata"]["namespace"])
            if ns != f"todo-{ref['name']}" or (ns, ref["name"]) not in services:
                fail.append(f"rule {name}: backend {ns}/{ref['name']} is no Service <fn> in todo-<fn>")
            else:
                function = ref["name"]
        table.append({"name": name, "matches": found, "function": function, "forwards": bool(refs)})
    return table, fail


def sets_hsts(filters):
    for f in filters:
        if f["type"] == "ResponseHeaderModifier":
            headers = f["responseHeaderModifier"].get("set", [])
            if any(h["name"].lower() == HSTS.lower() and h["value"].startswith("max-age=") for h in headers):
                return True
    return False


def violations(table, routes_by_function):
    fail = []
    for function, routes in routes_by_function.items():
        for path in routes:
            rule, match = best_rule(table, path)
            where = f"{function} {path}"
            if path.startswith(INTERNAL) or path == "/metrics":
                if rule is None or rule["forwards"]:
                    fail.append(f"{where}: internal route reachable from the public origin "
                                f"(rule {rule and rule['name']}); match it on a rule without backends")
            elif path.startswith(PUBLIC) or path in ("/ws",):
                if rule is None or rule["function"] != function:
                    fail.append(f"{where}: public route not routed to {function} "
                                f"(goes to {rule and (rule['function'] or 'no backend')} by rule {rule and rule['name']})")
            elif rule is not None and match != CATCH_ALL and rule["function"] not in (None, function):
                fail.append(f"{where}: claimed by rule {rule['name']} for {rule['function']}")
    for rule in table:
        if not rule["forwards"] or rule["function"] is None:
            continue
        for match in rule["matches"]:
            served = [p for p in routes_by_function.get(rule["function"], {})
                      if best_rule(table, p) == (rule, match)]
            if not served:
                fail.append(f"rule {rule['name']}: {match[0]} {match[1]} reaches no route of {rule['function']}")
    return fail


def check(rendered, root):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    table, fail = route_table(docs)
    functions = sorted(p.name for p in (root / "functions").iterdir() if (p / "src").is_dir())
    routes_by_function = {}
    for f in functions:
        routes, unresolved = registered_routes(root, f)
        fail += unresolved
        routes_by_function[f] = routes
    if not any(r.startswith(PUBLIC[0]) for rs in routes_by_function.values() for r in rs):
        fail.append("no /api/ route found in the sources: the route reader is broken")
    return fail + violations(table, routes_by_function)


def self_test():
    """The checker catches each kind of drift on a small table."""
    def rule(name, fn, *ms, forwards=True):
        return {"name": name, "function": fn, "forwards": forwards, "matches": list(ms)}
    routes = {"task-api": {"/api/tasks": "", "/api/tasks/{id}": "", "/api/calendar.ics": "",
                           "/api/calendar/token": "", "/job/outbox-relay": "", "/healthz": ""},
              "audit": {"/api/audit-logs": "", "/events/task-events": ""},
              "sync-gateway": {"/ws/tasks": "", "/healthz": ""}}
    good = [rule("t", "task-api", ("PathPrefix", "/api/tasks"), ("Exact", "/api/calendar.ics"),
                 ("PathPrefix", "/api/calendar")),
            rule("a", "audit", ("PathPrefix", "/api/audit-logs")),
            rule("w", "sync-gateway", ("PathPrefix", "/ws")),
            rule("i", None, ("PathPrefix", "/job"), ("PathPrefix", "/events"), forwards=False),
            rule("web", "sync-gateway", CATCH_ALL)]
    bad = 0
    if violations(good, routes):
        print(f"self-test: a good table fails: {violations(good, routes)}", file=sys.stderr)
        bad += 1
    cases = {
        # PathPrefix /api/calendar does not match /api/calendar.ics.
        "calendar feed without its Exact match": [good[0] | {"matches": [("PathPrefix", "/api/tasks"),
                                                                         ("PathPrefix", "/api/calendar")]}] + good[1:],
        "a prefix sent to the wrong function": [good[0], rule("a", "task-api", ("PathPrefix", "/api/audit-logs"))] + good[2:],
        "a prefix nobody serves": good + [rule("x", "audit", ("PathPrefix", "/api/nothing"))],
        "callbacks reachable": good[:3] + [good[4]],
        "a public route falling to the catch-all": [good[0]] + good[2:],
    }
    for what, table in cases.items():
        if not violations(table, routes):
            print(f"self-test: not caught: {what}", file=sys.stderr)
            bad += 1
    bad += reader_self_test()
    bad += table_self_test()
    if not matches(("PathPrefix", "/abc"), "/abc/def") or matches(("PathPrefix", "/abc"), "/abcd"):
        print("self-test: PathPrefix is not element-wise", file=sys.stderr)
        bad += 1
    return bad


def table_self_test():
    """The rules' backends and headers: a Knative rule must go to
    KNATIVE_INGRESS with a `<fn>.todo-<fn>.svc` host, every forwarding
    rule must set HSTS."""
    ns, name, port = KNATIVE_INGRESS
    hsts = {"type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": HSTS, "value": "max-age=31536000"}]}}

    def docs(host="task-api.todo-task-api.svc", ref=None, filters=None):
        rule = {"name": "t", "matches": [{"path": {"type": "PathPrefix", "value": "/api/tasks"}}],
                "filters": filters if filters is not None else
                [{"type": "URLRewrite", "urlRewrite": {"hostname": host}}, hsts],
                "backendRefs": [ref or {"name": name, "namespace": ns, "port": port}]}
        return [{"kind": "HTTPRoute", "apiVersion": "gateway.networking.k8s.io/v1",
                 "metadata": {"name": "todo-events", "namespace": "todo-edge"}, "spec": {"rules": [rule]}},
                {"kind": "Service", "apiVersion": "serving.knative.dev/v1",
                 "metadata": {"name": "task-api", "namespace": "todo-task-api"}}]
    bad = 0
    table, fail = route_table(docs())
    if fail or table[0]["function"] != "task-api":
        print(f"self-test: a good Knative rule fails: {fail}", file=sys.stderr)
        bad += 1
    cases = {
        "the Knative placeholder Service as backend": docs(ref={"name": "task-api", "namespace": "todo-task-api",
                                                                "port": 80}),
        "the ingress on another port": docs(ref={"name": name, "namespace": ns, "port": 8081}),
        "the ingress in another namespace": docs(ref={"name": name, "port": port}),
        "a host with the cluster domain": docs(host="task-api.todo-task-api.svc.cluster.local"),
        "a host of no Knative Service": docs(host="audit.todo-audit.svc"),
        "no HSTS": docs(filters=[{"type": "URLRewrite", "urlRewrite": {"hostname": "task-api.todo-task-api.svc"}}]),
    }
    for what, d in cases.items():
        if not route_table(d)[1]:
            print(f"self-test: not caught: {what}", file=sys.stderr)
            bad += 1
    return bad


def reader_self_test():
    """The source reader: literals and consts are read, tests and comments
    skipped, a path it cannot read is reported."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "functions/x/src").mkdir(parents=True)
        (root / "shared/s/src").mkdir(parents=True)
        (root / "shared/s/src/lib.rs").write_text('pub const FEED: &str = "/api/feed";\n')
        (root / "functions/x/src/lib.rs").write_text(
            'Router::new()\n    .route("/api/a", get(a))\n    .route(s::FEED, get(f))\n'
            '    // .route("/api/commented", get(c))\n'
            '#[cfg(test)]\nmod tests {\n    fn t() { Router::new().route("/api/test-only", get(t)); }\n}\n')
        (root / "functions/x/src/x_tests.rs").write_text('Router::new().route("/api/in-tests", get(t));\n')
        routes, unresolved = registered_routes(root, "x")
        want = {"/api/a", "/api/feed", *HEALTH_ROUTES}
        bad = 0
        if set(routes) != want or unresolved:
            print(f"self-test: reader read {sorted(routes)}, {unresolved}", file=sys.stderr)
            bad += 1
        (root / "functions/x/src/lib.rs").write_text('Router::new().route(&format!("/api/{v}"), get(a));\n')
        _, unresolved = registered_routes(root, "x")
        if len(unresolved) != 1:
            print(f"self-test: a computed path was not reported: {unresolved}", file=sys.stderr)
            bad += 1
        return bad


def main():
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(1 if self_test() else 0)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    fail = check(sys.argv[1], pathlib.Path(sys.argv[2]).resolve())
    for f in fail:
        print(f"  {f}", file=sys.stderr)
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()
