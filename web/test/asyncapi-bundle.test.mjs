// The AsyncAPI bundle the /docs page shows (scripts/asyncapi/contracts.mjs
// `bundle`): the real document keeps every channel, operation and message
// and has no reference left that a browser would have to fetch; for random
// documents and schema sets, every reference, expanded, means what it
// meant before bundling; references it cannot make local are refused.
// (scripts/asyncapi/check.mjs also parses the real bundle with
// @asyncapi/parser.)

import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { bundle, DOCUMENT, schemasById } from "../../scripts/asyncapi/contracts.mjs";

/** The node a JSON pointer (`/a/b~1c`) names in `root`, or undefined. */
function pointer(root, path) {
  if (path === "") return root;
  return path
    .slice(1)
    .split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((node, key) => (node === undefined || node === null ? undefined : node[key]), root);
}

/** Every `$ref` string in a JSON value. */
function refs(node, found = []) {
  if (Array.isArray(node)) node.forEach((item) => refs(item, found));
  else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") found.push(value);
      else refs(value, found);
    }
  }
  return found;
}

/** `node` with every reference replaced by what it names, recursively;
 * `locate(ref, where)` returns `{ node, where }` for a reference met in
 * `where`. `$id` and `$schema` are left out (the bundle drops them). */
function expand(node, where, locate) {
  if (Array.isArray(node)) return node.map((item) => expand(item, where, locate));
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    const target = locate(node.$ref, where);
    assert.notEqual(target.node, undefined, `${node.$ref} names nothing`);
    return expand(target.node, target.where, locate);
  }
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key !== "$id" && key !== "$schema") out[key] = expand(value, where, locate);
  }
  return out;
}

/** How the original files resolve: by `$id`, by relative file, or inside
 * the file the reference is in. */
function fileLocator(documentPath, schemaDir) {
  const byId = schemasById(schemaDir);
  const read = (file) => JSON.parse(readFileSync(file, "utf8"));
  return (ref, where) => {
    const [target, fragment = ""] = ref.split("#");
    let file = where;
    if (target.startsWith("urn:")) file = byId.get(target).file;
    else if (target !== "") file = resolve(dirname(where), target);
    return { node: pointer(read(file), fragment), where: file };
  };
}

/** How the bundle resolves: every reference is local. */
function bundleLocator(bundled) {
  return (ref) => {
    assert.ok(ref.startsWith("#/") || ref === "#", `${ref} is not local`);
    return { node: pointer(bundled, ref.slice(1)), where: null };
  };
}

function tempContracts(document, schemas) {
  const dir = mkdtempSync(join(tmpdir(), "asyncapi-bundle-"));
  mkdirSync(join(dir, "schemas"));
  for (const [name, schema] of Object.entries(schemas)) writeFileSync(join(dir, "schemas", name), JSON.stringify(schema));
  writeFileSync(join(dir, "asyncapi.json"), JSON.stringify(document));
  return { dir, documentPath: join(dir, "asyncapi.json"), schemaDir: join(dir, "schemas") };
}

test("the real document: every channel, operation and message kept, no reference left to fetch, each meaning what it did", () => {
  const original = JSON.parse(readFileSync(DOCUMENT, "utf8"));
  const bundled = bundle();
  for (const part of ["channels", "operations", "servers", "info"]) {
    assert.deepEqual(Object.keys(bundled[part]), Object.keys(original[part]), part);
  }
  assert.deepEqual(Object.keys(bundled.components.messages), Object.keys(original.components.messages));
  const all = refs(bundled);
  assert.ok(all.length > 0);
  for (const ref of all) {
    assert.match(ref, /^#\//, `${ref} is not local`);
    assert.notEqual(pointer(bundled, ref.slice(1)), undefined, `${ref} names nothing in the bundle`);
  }
  // Each schema file the document uses is in components.schemas once.
  assert.ok(bundled.components.schemas["task-snapshot"], "task-snapshot, reached only through task-event's $id reference");
  const schemaDir = join(dirname(DOCUMENT), "schemas");
  assert.deepEqual(
    expand(bundled.components.messages, null, bundleLocator(bundled)),
    expand(original.components.messages, DOCUMENT, fileLocator(DOCUMENT, schemaDir)),
  );
});

test("references the bundle cannot make local are refused", () => {
  const schema = { $id: "urn:t:a", type: "object" };
  const cases = [
    [{ $ref: "urn:t:missing" }, /no schema .* has this \$id/],
    [{ $ref: "https://example.com/a.json" }, /cannot make local/],
    [{ $ref: "../outside.json" }, /not a schema file/],
    [{ $ref: "./schemas/a.json#properties" }, /JSON-pointer fragments/],
  ];
  for (const [payload, error] of cases) {
    const { dir, documentPath, schemaDir } = tempContracts({ components: { messages: { m: { payload } } } }, { "a.json": schema });
    try {
      assert.throws(() => bundle(documentPath, schemaDir), error, JSON.stringify(payload));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/** A random set of schemas s0..sN that refer to their own `$defs` and, by
 * `$id` (maybe with a fragment), to schemas of a higher index (so the
 * expansion ends), and a document whose messages refer to them by file. */
const contracts = fc.integer({ min: 1, max: 5 }).chain((n) => {
  const property = (i) =>
    fc.oneof(
      fc.integer().map((value) => ({ type: "integer", const: value })),
      fc.constant({ $ref: "#/$defs/d" }),
      ...(i + 1 < n
        ? [
            fc.tuple(fc.integer({ min: i + 1, max: n - 1 }), fc.boolean()).map(([j, deep]) => ({
              $ref: `urn:t:s${j}${deep ? "#/$defs/d" : ""}`,
            })),
          ]
        : []),
    );
  const schema = (i) =>
    fc.array(property(i), { minLength: 1, maxLength: 4 }).map((props) => ({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: `urn:t:s${i}`,
      type: "object",
      properties: Object.fromEntries(props.map((p, k) => [`p${k}`, p])),
      $defs: { d: { type: "string", const: `s${i}-d` } },
    }));
  const message = fc
    .tuple(fc.integer({ min: 0, max: n - 1 }), fc.boolean())
    .map(([j, deep]) => ({ payload: { $ref: `./schemas/s${j}.json${deep ? "#/$defs/d" : ""}` } }));
  return fc.record({
    schemas: fc.tuple(...Array.from({ length: n }, (_, i) => schema(i))),
    messages: fc.array(message, { minLength: 1, maxLength: 4 }),
  });
});

test("property: every reference of the bundle is local and expands to what the original expanded to", () => {
  fc.assert(
    fc.property(contracts, ({ schemas, messages }) => {
      const named = Object.fromEntries(schemas.map((s, i) => [`s${i}.json`, s]));
      const document = {
        asyncapi: "3.0.0",
        components: {
          messages: Object.fromEntries(messages.map((m, k) => [`m${k}`, m])),
          messageTraits: { first: { $ref: "#/components/messages/m0" } },
        },
      };
      const { dir, documentPath, schemaDir } = tempContracts(document, named);
      try {
        const bundled = bundle(documentPath, schemaDir);
        for (const ref of refs(bundled)) assert.match(ref, /^#\//);
        assert.deepEqual(
          expand(bundled.components, null, bundleLocator(bundled)).messages,
          expand(document.components, documentPath, fileLocator(documentPath, schemaDir)).messages,
        );
        assert.deepEqual(
          expand(bundled.components.messageTraits, null, bundleLocator(bundled)),
          expand(document.components.messageTraits, documentPath, fileLocator(documentPath, schemaDir)),
        );
        // Only the schemas the messages reach are inlined, each once.
        for (const key of Object.keys(bundled.components.schemas)) assert.ok(named[`${key}.json`], key);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 150 },
  );
});
