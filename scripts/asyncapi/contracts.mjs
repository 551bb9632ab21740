// Where the AsyncAPI document's payload schemas live and how its
// references reach them; shared by check.mjs (the parser's resolver) and
// web/scripts/build-docs.mjs (the bundled copy the /docs page shows).
//
// shared/contracts/asyncapi.json refers to the schemas by relative file
// (`./schemas/task-event.v1.json`, maybe with a `#/oneOf/0` fragment), and
// the schemas refer to each other by their `$id`
// (`urn:todo-events:schema:task-snapshot:v1`), which no ref resolver can
// fetch: `schemasById` maps each `$id` to its file. A browser viewer can
// resolve neither, so `bundle` returns the document with every schema
// placed once under `components.schemas` and every such reference turned
// into a local one; anything else that is not local is refused.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DOCUMENT = join(REPO_ROOT, 'shared/contracts/asyncapi.json');
export const SCHEMA_DIR = join(REPO_ROOT, 'shared/contracts/schemas');

/** `$id` → `{ file, text }` of every schema in `schemaDir`. */
export function schemasById(schemaDir = SCHEMA_DIR) {
  const byId = new Map();
  for (const name of readdirSync(schemaDir).filter((n) => n.endsWith('.json')).sort()) {
    const file = join(schemaDir, name);
    const text = readFileSync(file, 'utf8');
    const id = JSON.parse(text).$id;
    if (id) byId.set(id, { file, text });
  }
  return byId;
}

/** The `components.schemas` key of a schema file: its name less `.json`
 * (`task-event.v1`), which the spec's key pattern admits. */
export function componentKey(file) {
  const key = basename(file, '.json');
  if (!/^[A-Za-z0-9.\-_]+$/.test(key)) throw new Error(`${file}: no valid components.schemas key`);
  return key;
}

/**
 * The document at `documentPath` with its schema files inlined (see the
 * module comment). The schemas lose `$id` (it would rebase the rewritten
 * `#/components/...` references inside them) and `$schema` (the message's
 * schema format decides the dialect inside an AsyncAPI document).
 */
export function bundle(documentPath = DOCUMENT, schemaDir = SCHEMA_DIR) {
  const byId = schemasById(schemaDir);
  const byFile = new Map([...byId.values()].map(({ file, text }) => [file, JSON.parse(text)]));
  const document = JSON.parse(readFileSync(documentPath, 'utf8'));
  const wanted = new Set();

  /** The local reference for `ref` as written in `from` (a schema file, or
   * null for the document itself). */
  const rewrite = (ref, from) => {
    const hash = ref.indexOf('#');
    const target = hash < 0 ? ref : ref.slice(0, hash);
    const fragment = hash < 0 ? '' : ref.slice(hash + 1);
    if (fragment && !fragment.startsWith('/')) throw new Error(`${ref}: only JSON-pointer fragments are supported`);
    let file;
    if (target === '') {
      if (from === null) return ref;
      file = from;
    } else if (target.startsWith('urn:')) {
      file = byId.get(target)?.file;
      if (!file) throw new Error(`${ref}: no schema in ${schemaDir} has this $id`);
    } else if (/^\.\.?\//.test(target)) {
      file = resolve(dirname(from ?? documentPath), target);
      if (!byFile.has(file)) throw new Error(`${ref}: not a schema file in ${schemaDir}`);
    } else {
      throw new Error(`${ref}: a reference the bundle cannot make local`);
    }
    wanted.add(file);
    return `#/components/schemas/${componentKey(file)}${fragment}`;
  };

  const walk = (node, from) => {
    if (Array.isArray(node)) return node.map((item) => walk(item, from));
    if (node === null || typeof node !== 'object') return node;
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = key === '$ref' && typeof value === 'string' ? rewrite(value, from) : walk(value, from);
    }
    return out;
  };

  const bundled = walk(document, null);
  const schemas = {};
  const done = new Set();
  // Inlining a schema may want another (task-event → task-snapshot).
  while (done.size < wanted.size) {
    for (const file of [...wanted].filter((f) => !done.has(f))) {
      const { $id, $schema, ...schema } = byFile.get(file);
      schemas[componentKey(file)] = walk(schema, file);
      done.add(file);
    }
  }
  const components = bundled.components ?? {};
  for (const key of Object.keys(schemas)) {
    if (components.schemas?.[key] !== undefined) throw new Error(`components.schemas.${key} already exists in ${documentPath}`);
  }
  const sorted = Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
  bundled.components = { ...components, schemas: { ...(components.schemas ?? {}), ...sorted } };
  return bundled;
}
