// web/scripts/build-docs.mjs: which OpenAPI document /docs shows (the
// merged public one, task-api's only while that is missing, none: the
// build fails), and the two pages made from docs/page.html.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openapiSource, page } from "../scripts/build-docs.mjs";

test("the merged public document first, task-api's as the fallback, none fails", () => {
  const repo = mkdtempSync(join(tmpdir(), "build-docs-"));
  try {
    assert.throws(() => openapiSource(repo), /no OpenAPI document for \/docs/);
    mkdirSync(join(repo, "functions/task-api"), { recursive: true });
    writeFileSync(join(repo, "functions/task-api/openapi.json"), "{}");
    assert.equal(openapiSource(repo), join(repo, "functions/task-api/openapi.json"));
    mkdirSync(join(repo, "shared/contracts"), { recursive: true });
    writeFileSync(join(repo, "shared/contracts/openapi.public.json"), "{}");
    assert.equal(openapiSource(repo), join(repo, "shared/contracts/openapi.public.json"));
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
});

test("each page has both tabs, marks its own as current, and names its document", () => {
  const template = readFileSync(new URL("../docs/page.html", import.meta.url), "utf8");
  const pages = { "index.html": ["http-api", "openapi.json", 'href="./" aria-current'], "events.html": ["asyncapi", "asyncapi.json", 'href="events.html" aria-current'] };
  for (const [name, [main, document, current]] of Object.entries(pages)) {
    const html = page(template, name);
    assert.doesNotMatch(html, /\{\{/, name);
    assert.match(html, /<a href="\.\/"[^>]*>HTTP API<\/a>/, name);
    assert.match(html, /<a href="events\.html"[^>]*>Events &amp; socket<\/a>/, name);
    assert.equal(html.match(/aria-current="page"/g)?.length, 1, name);
    assert.ok(html.includes(current), name);
    assert.ok(html.includes(`<main id="${main}" data-document="${document}">`), name);
  }
  assert.throws(() => page("{{nothing}}", "index.html"), /no value for \{\{nothing\}\}/);
});

test("the HTTP API page turns Scalar's request proxy off with the key the bundle reads", () => {
  // Scalar's standalone bundle falls back to https://proxy.scalar.com when
  // `proxyUrl` is undefined (web/docs/http.js says where); the page sets it
  // empty. An upgrade that renames the key must be looked at again.
  const bundle = readFileSync(new URL("../node_modules/@scalar/api-reference/dist/browser/standalone.js", import.meta.url), "utf8");
  assert.match(bundle, /proxyUrl:\w+\(\w+\(\),\{typeComment:`URL to a request proxy for the API client`\}\)/);
  const http = readFileSync(new URL("../docs/http.js", import.meta.url), "utf8");
  assert.match(http, /^\s+proxyUrl: "",$/m);
});
