// Builds the /docs pages into dist/docs/ (sync-gateway serves dist/):
//
//   index.html, http.js     the public HTTP API (OpenAPI 3.1) in Scalar
//   events.html, events.js  the events and the socket (AsyncAPI 3.0) in
//                           the AsyncAPI React component
//                           (both pages from docs/page.html, see PAGES)
//   docs.css                the tab bar both pages share
//   vendor/                 the viewers' standalone bundles, copied from
//                           node_modules (exact versions: package-lock.json)
//   openapi.json            shared/contracts/openapi.public.json
//   asyncapi.json           shared/contracts/asyncapi.json with its payload
//                           schemas inlined (scripts/asyncapi/contracts.mjs)
//
// Nothing is fetched at run time from anywhere but the gateway. Run by
// `npm run build` (scripts/lib/browser.sh web_build).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundle, REPO_ROOT } from '../../scripts/asyncapi/contracts.mjs';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(web, 'docs');
const out = join(web, 'dist/docs');
const modules = join(web, 'node_modules');

/** The viewers' files: where npm put them → their name under vendor/. */
const VENDOR = {
  '@scalar/api-reference/dist/browser/standalone.js': 'scalar-api-reference.js',
  '@asyncapi/react-component/browser/standalone/index.js': 'asyncapi-react.js',
  '@asyncapi/react-component/styles/default.min.css': 'asyncapi-react.css',
};

/** The two pages, in the order of their tabs: each its own document
 * (so the gateway can give each its own Content-Security-Policy, see
 * functions/sync-gateway/src/web.rs), the same tab bar. */
const PAGES = {
  'index.html': {
    tab: 'HTTP API',
    href: './',
    head: ['<link rel="stylesheet" href="docs.css">', '<script src="http.js" defer></script>'],
    main: 'http-api',
    document: 'openapi.json',
  },
  'events.html': {
    tab: 'Events &amp; socket',
    href: 'events.html',
    head: [
      '<link rel="stylesheet" href="vendor/asyncapi-react.css">',
      '<link rel="stylesheet" href="docs.css">',
      '<script src="vendor/asyncapi-react.js" defer></script>',
      '<script src="events.js" defer></script>',
    ],
    main: 'asyncapi',
    document: 'asyncapi.json',
  },
};

/** docs/page.html filled in for one of PAGES. */
export function page(template, name) {
  const { tab, head, main, document } = PAGES[name];
  const tabs = Object.entries(PAGES).map(([other, { tab, href }]) => {
    const current = other === name ? ' aria-current="page"' : '';
    return `      <a href="${href}"${current}>${tab}</a>`;
  });
  const fields = { title: tab, head: head.map((line) => `  ${line}`).join('\n'), tabs: tabs.join('\n'), main, document };
  return template.replace(/\{\{(\w+)\}\}/g, (_, key) => {
    if (fields[key] === undefined) throw new Error(`docs/page.html: no value for {{${key}}}`);
    return fields[key];
  });
}

/** The public origin's merged document (scripts/openapi-public); task-api's
 * own only while the merged one does not exist yet. */
const OPENAPI = [
  'shared/contracts/openapi.public.json',
  'functions/task-api/openapi.json',
];

export function openapiSource(repo = REPO_ROOT) {
  const found = OPENAPI.find((path) => existsSync(join(repo, path)));
  if (!found) throw new Error(`no OpenAPI document for /docs: none of ${OPENAPI.join(', ')} exists`);
  if (found !== OPENAPI[0]) console.warn(`build-docs: ${OPENAPI[0]} is missing; /docs shows ${found} alone`);
  return join(repo, found);
}

function build() {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'vendor'), { recursive: true });
  const template = readFileSync(join(source, 'page.html'), 'utf8');
  for (const name of Object.keys(PAGES)) writeFileSync(join(out, name), page(template, name));
  for (const name of readdirSync(source).filter((n) => n !== 'page.html')) copyFileSync(join(source, name), join(out, name));
  for (const [from, to] of Object.entries(VENDOR)) {
    const file = join(modules, from);
    if (!existsSync(file)) throw new Error(`${relative(web, file)} is missing: run npm ci in web/ (the viewer's layout changed?)`);
    copyFileSync(file, join(out, 'vendor', to));
  }
  copyFileSync(openapiSource(), join(out, 'openapi.json'));
  writeFileSync(join(out, 'asyncapi.json'), `${JSON.stringify(bundle(), null, 2)}\n`);
}

// Run as a script (npm run build), not when a test imports it.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    build();
  } catch (error) {
    console.error(`build-docs: ${error.message}`);
    process.exit(1);
  }
}
