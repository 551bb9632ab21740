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
// shared/contracts/schemas/ whose `$id` it is (and fails on any other):
// contracts.mjs holds that mapping. The document bundled for the /docs
// page (contracts.mjs `bundle`: every schema inlined, no resolver needed)
// is parsed too, and must describe as many channels, operations and
// messages as the original.
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { bundle, DOCUMENT, SCHEMA_DIR, schemasById } from './contracts.mjs';

const [toolsDir, docArg] = process.argv.slice(2);
if (!toolsDir) {
  console.error('usage: check.mjs TOOLS_DIR [DOCUMENT]');
  process.exit(2);
}
const require = createRequire(join(resolve(toolsDir), 'package.json'));
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const document = resolve(docArg ?? DOCUMENT);
const byId = schemasById();
const parser = new Parser({
  __unstable: {
    resolver: {
      resolvers: [
        {
          schema: 'urn',
          read(uri) {
            const schema = byId.get(uri.toString());
            if (schema === undefined) throw new Error(`no schema in ${SCHEMA_DIR} has $id ${uri}`);
            return schema.text;
          },
        },
      ],
    },
  },
});

/** Parses, prints every diagnostic, and exits on an error-severity one. */
async function parseOrExit(what, parse) {
  const { document: parsed, diagnostics } = await parse();
  const name = ['error', 'warning', 'information', 'hint'];
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? d.path.join('/') : '(document)';
    console.log(`${name[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
  }
  if (errors.length > 0 || !parsed) {
    console.error(`\n${what}: ${errors.length} error(s); the AsyncAPI parser refused it`);
    process.exit(1);
  }
  return parsed;
}

/** What the viewer lists: channels, operations and messages. */
const counts = (parsed) => ({
  channels: parsed.channels().length,
  operations: parsed.operations().length,
  messages: parsed.allMessages().length,
});

const parsed = await parseOrExit(document, () => fromFile(parser, document).parse());
const { channels, operations, messages } = counts(parsed);
console.log(`${document}: valid AsyncAPI ${parsed.version()} (${channels} channels, ${operations} operations, ${messages} messages)`);

// The bundle, through a parser without the urn resolver: nothing may be
// left to fetch.
const bundled = await parseOrExit(`${document} bundled`, () => new Parser().parse(JSON.stringify(bundle(document))));
const want = JSON.stringify({ channels, operations, messages });
const got = JSON.stringify(counts(bundled));
if (got !== want) {
  console.error(`${document} bundled: ${got}, the original ${want}`);
  process.exit(1);
}
console.log(`${document} bundled for /docs: valid, the same ${channels} channels, ${operations} operations, ${messages} messages`);
