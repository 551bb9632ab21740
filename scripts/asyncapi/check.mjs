// Validates an AsyncAPI document with @asyncapi/parser (the reference
// parser: the AsyncAPI 3.0 JSON Schema, the bindings' schemas, and the
// spec's semantic rules) and fails on any error-severity diagnostic.
//
//   node scripts/asyncapi/check.mjs TOOLS_DIR [DOCUMENT]
//
// TOOLS_DIR is where scripts/lib/asyncapi.sh installed the locked packages;
// DOCUMENT defaults to shared/contracts/asyncapi.json.
//
// The payload schemas refer to each other by their `$id`
// (`urn:todo-events:schema:...`), which no ref resolver can fetch, so a
// resolver for the `urn` scheme reads the schema in
// shared/contracts/schemas/ whose `$id` it is (and fails on any other).
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const [toolsDir, docArg] = process.argv.slice(2);
if (!toolsDir) {
  console.error('usage: check.mjs TOOLS_DIR [DOCUMENT]');
  process.exit(2);
}
const require = createRequire(join(resolve(toolsDir), 'package.json'));
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const document = resolve(docArg ?? join(repo, 'shared/contracts/asyncapi.json'));
const schemaDir = join(repo, 'shared/contracts/schemas');

/** `$id` → file text of every schema in shared/contracts/schemas. */
function schemasById() {
  const byId = new Map();
  for (const name of readdirSync(schemaDir).filter((n) => n.endsWith('.json'))) {
    const text = readFileSync(join(schemaDir, name), 'utf8');
    const id = JSON.parse(text).$id;
    if (id) byId.set(id, text);
  }
  return byId;
}

const byId = schemasById();
const parser = new Parser({
  __unstable: {
    resolver: {
      resolvers: [
        {
          schema: 'urn',
          read(uri) {
            const text = byId.get(uri.toString());
            if (text === undefined) throw new Error(`no schema in ${schemaDir} has $id ${uri}`);
            return text;
          },
        },
      ],
    },
  },
});

const { document: parsed, diagnostics } = await fromFile(parser, document).parse();
const name = ['error', 'warning', 'information', 'hint'];
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const where = d.path && d.path.length ? d.path.join('/') : '(document)';
  console.log(`${name[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
}
if (errors.length > 0 || !parsed) {
  console.error(`\n${document}: ${errors.length} error(s); the AsyncAPI parser refused it`);
  process.exit(1);
}
const channels = parsed.channels().length;
const operations = parsed.operations().length;
const messages = parsed.allMessages().length;
console.log(`${document}: valid AsyncAPI ${parsed.version()} (${channels} channels, ${operations} operations, ${messages} messages)`);
