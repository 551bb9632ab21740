"""Tests of scripts/tools/openapi_public.py, the merge of the functions'
OpenAPI documents into the public origin's."""
import contextlib
import io
import json
import pathlib
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "tools"))

import openapi_public as op  # noqa: E402


def rule(name, function, *matches, forwards=True):
    return {"name": name, "function": function, "forwards": forwards, "matches": list(matches)}


TABLE = [
    rule("tasks", "task-api", ("PathPrefix", "/api/tasks")),
    rule("audit", "audit", ("PathPrefix", "/api/audit-logs")),
    rule("internal", None, ("PathPrefix", "/events"), ("PathPrefix", "/metrics"), forwards=False),
    rule("web", "sync-gateway", ("PathPrefix", "/")),
]


def problem(title):
    return {"type": "object", "title": title}


def doc(paths, schemas, security=None):
    d = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
         "components": {"schemas": schemas,
                        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
    if security is not None:
        d["security"] = security
    return d


def get(op_id, ref):
    return {"get": {"operationId": op_id,
                    "responses": {"200": {"description": "ok", "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}}}}


class MergeTest(unittest.TestCase):
    def functions(self):
        return {
            "task-api": doc({"/api/tasks": get("listTasks", "Problem"), "/healthz": get("taskHealth", "Problem"),
                             "/events/x": get("taskEvents", "Problem")},
                            {"Problem": problem("task"), "Unused": problem("never referenced")},
                            security=[{"bearer": []}]),
            "audit": doc({"/api/audit-logs": get("listAudit", "Problem")}, {"Problem": problem("audit")}),
            "sync-gateway": doc({"/healthz": get("gatewayHealth", "Health")}, {"Health": problem("health")}),
        }

    def test_only_paths_the_origin_sends_to_their_function(self):
        merged = op.merge(self.functions(), TABLE, "1")
        self.assertEqual(sorted(merged["paths"]), ["/api/audit-logs", "/api/tasks", "/healthz"])
        self.assertEqual(merged["paths"]["/healthz"]["x-todo-events-function"], "sync-gateway")

    def test_a_name_meaning_two_things_is_prefixed_and_refs_follow(self):
        merged = op.merge(self.functions(), TABLE, "1")
        schemas = merged["components"]["schemas"]
        self.assertEqual(schemas["TaskApiProblem"]["title"], "task")
        self.assertEqual(schemas["AuditProblem"]["title"], "audit")
        self.assertNotIn("Problem", schemas)
        self.assertNotIn("Unused", schemas)
        ref = merged["paths"]["/api/audit-logs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        self.assertEqual(ref["$ref"], "#/components/schemas/AuditProblem")

    def test_the_same_meaning_keeps_its_name(self):
        functions = self.functions()
        functions["audit"]["components"]["schemas"]["Problem"] = problem("task")
        merged = op.merge(functions, TABLE, "1")
        self.assertIn("Problem", merged["components"]["schemas"])
        self.assertNotIn("AuditProblem", merged["components"]["schemas"])

    def test_document_security_moves_onto_each_operation(self):
        merged = op.merge(self.functions(), TABLE, "1")
        self.assertEqual(merged["paths"]["/api/tasks"]["get"]["security"], [{"bearer": []}])
        self.assertNotIn("security", merged)
        self.assertIn("bearer", merged["components"]["securitySchemes"])

    def test_security_scheme_prose_may_differ_but_not_its_meaning(self):
        functions = self.functions()
        functions["audit"]["security"] = [{"bearer": []}]
        functions["audit"]["components"]["securitySchemes"]["bearer"]["description"] = "longer words"
        merged = op.merge(functions, TABLE, "1")
        self.assertEqual(merged["components"]["securitySchemes"]["bearer"]["description"], "longer words")
        functions["audit"]["components"]["securitySchemes"]["bearer"]["scheme"] = "basic"
        with self.assertRaises(op.MergeError):
            op.merge(functions, TABLE, "1")

    def test_one_operation_id_twice_fails(self):
        functions = self.functions()
        functions["audit"]["paths"]["/api/audit-logs"]["get"]["operationId"] = "listTasks"
        with self.assertRaisesRegex(op.MergeError, "listTasks"):
            op.merge(functions, TABLE, "1")

    def test_a_dangling_reference_fails(self):
        functions = self.functions()
        functions["audit"]["paths"]["/api/audit-logs"] = get("listAudit", "Missing")
        with self.assertRaisesRegex(op.MergeError, "Missing"):
            op.merge(functions, TABLE, "1")


class RepositoryTest(unittest.TestCase):
    """The repository's own documents and path table."""

    def test_every_public_path_of_every_function_is_in_the_merge(self):
        table, functions, version, license = op.load(ROOT)
        merged = op.merge(functions, table, version, license)
        self.assertEqual(merged["info"]["license"], {"name": "Apache-2.0", "identifier": "Apache-2.0"})
        for function, d in functions.items():
            self.assertEqual(d["info"].get("license"), merged["info"]["license"], f"{function}'s license")
            for path in d["paths"]:
                if path.startswith(("/api/", "/ws/")):
                    self.assertEqual(merged["paths"].get(path, {}).get("x-todo-events-function"), function,
                                     f"{function} {path}")

    def test_one_problem_schema_for_the_whole_origin(self):
        # Every function answers errors with service::problem::Problem; their
        # documents spell it identically, so the merge keeps one `Problem`.
        table, functions, version, _ = op.load(ROOT)
        # recurring documents no error answers (its only paths are the
        # operator's), so it defines no Problem.
        bodies = {json.dumps(d["components"]["schemas"]["Problem"], sort_keys=True) for d in functions.values()
                  if "Problem" in d["components"].get("schemas", {})}
        self.assertEqual(len(bodies), 1, "functions/*/openapi.json define Problem differently")
        merged = op.merge(functions, table, version)
        self.assertEqual([n for n in merged["components"]["schemas"] if n.endswith("Problem")], ["Problem"])

    def test_the_description_names_each_functions_local_port(self):
        # The /docs page's "Test Request" goes to the server `/`: locally
        # that is sync-gateway's port only, and the description says where
        # the others listen, as scripts/lib/stack.sh starts them.
        table, functions, version, _ = op.load(ROOT)
        merged = op.merge(functions, table, version)
        description = merged["info"]["description"]
        stack = (ROOT / "scripts" / "lib" / "stack.sh").read_text()
        public = {item["x-todo-events-function"] for item in merged["paths"].values()}
        self.assertEqual(public, set(functions) - {"recurring"}, "functions with public paths")
        for function in public:
            port = next(line.split()[1] for line in stack.splitlines()
                        if line.strip().startswith(f'"{function} '))
            self.assertIn(f"{function} {port}", description)

    def test_check_flags_a_stale_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "public.json"
            self.assertEqual(op.main(["x", str(ROOT), str(out)]), 0)
            self.assertEqual(op.main(["x", str(ROOT), str(out), "--check"]), 0)
            stale = json.loads(out.read_text())
            stale["paths"].pop(next(iter(stale["paths"])))
            out.write_text(json.dumps(stale))
            with contextlib.redirect_stderr(io.StringIO()) as err:
                self.assertEqual(op.main(["x", str(ROOT), str(out), "--check"]), 1)
            self.assertIn("is not current", err.getvalue())


if __name__ == "__main__":
    unittest.main()
