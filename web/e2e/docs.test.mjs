// The /docs pages in headless Chromium against the running sync-gateway
// (it serves web/dist/docs, which `npm run build` makes):
//
//   - /docs reaches the HTTP API page, where Scalar lists every operation
//     of the OpenAPI document the page itself serves (docs/openapi.json);
//   - its "Events & socket" tab opens the AsyncAPI page, where the AsyncAPI
//     component shows every channel and every operation of the served
//     docs/asyncapi.json;
//   - no page asked any host but the gateway for anything, logged a
//     Content-Security-Policy violation or any other console error, or
//     threw.
//
// Screenshots land in $TODO_EVENTS_RUN/artifacts (docs.png: the HTTP API,
// docs-events.png: the events). Without TODO_EVENTS_STACK=1 the test is
// skipped, never passed.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { ARTIFACTS, GATEWAY, STACK, launchChromium, skip } from "./chromium.mjs";

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
let browser;

before(async () => {
  if (STACK) browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** A document as the gateway serves it to the page. */
async function served(path) {
  const response = await fetch(`${GATEWAY}/docs/${path}`);
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  return response.json();
}

/** Every operation of an OpenAPI document: what Scalar's sidebar names it
 * by (its summary, else its path). */
function openapiOperations(document) {
  return Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({
      method,
      path,
      label: item[method].summary ?? path,
    })),
  );
}

/** A page that records every request and every console error. */
async function watchedPage(context) {
  const page = await context.newPage();
  const seen = { requests: [], errors: [] };
  page.on("request", (request) => seen.requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") seen.errors.push(`${page.url()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => seen.errors.push(`${page.url()}: ${error}`));
  return { page, seen };
}

test("/docs lists every HTTP operation and every channel, from the gateway alone, without CSP violations", { skip, timeout: 240_000 }, async () => {
  const openapi = await served("openapi.json");
  const asyncapi = await served("asyncapi.json");
  const operations = openapiOperations(openapi);
  assert.ok(operations.length > 0, "the served openapi.json has no operation");
  const channels = Object.values(asyncapi.channels ?? {});
  assert.ok(channels.length > 0, "the served asyncapi.json has no channel");

  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const { page, seen } = await watchedPage(context);
  // The viewers are large bundles (Scalar 4 MB, the AsyncAPI component
  // 3 MB with its parser): on a loaded machine they take a while.
  page.setDefaultTimeout(60_000);
  mkdirSync(ARTIFACTS, { recursive: true });

  // The bare path reaches the page (ServeDir's redirect to /docs/), under
  // the gateway's policy (so "no violation" below means something).
  const response = await page.goto(`${GATEWAY}/docs`);
  assert.equal(new URL(page.url()).pathname, "/docs/");
  assert.match(response.headers()["content-security-policy"] ?? "", /^default-src 'self';/);
  await page.getByRole("heading", { name: openapi.info.title }).first().waitFor();
  for (const { method, path, label } of operations) {
    const shown = await page.getByText(label, { exact: true }).count();
    assert.ok(shown > 0, `${method.toUpperCase()} ${path} ("${label}") is not listed on /docs/`);
  }
  await page.screenshot({ path: `${ARTIFACTS}/docs.png` });

  const [events] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === "/docs/events.html"),
    page.getByRole("link", { name: "Events & socket" }).click(),
  ]);
  await page.waitForURL(/\/docs\/events\.html$/);
  assert.match(events.headers()["content-security-policy"] ?? "", /^default-src 'self';/);
  const listed = page.locator("#operations");
  await listed.waitFor();
  for (const channel of channels) {
    const shown = await listed.locator("h3").getByText(channel.address, { exact: true }).count();
    assert.ok(shown > 0, `channel ${channel.address} is not listed on /docs/events.html`);
  }
  for (const [id, operation] of Object.entries(asyncapi.operations ?? {})) {
    const shown = await page.locator(`[id="operation-${operation.action}-${id}"]`).count();
    assert.ok(shown > 0, `operation ${id} is not shown on /docs/events.html`);
  }
  await page.screenshot({ path: `${ARTIFACTS}/docs-events.png` });

  const origin = new URL(GATEWAY).origin;
  const foreign = seen.requests.filter((url) => /^(https?|wss?):/.test(url) && new URL(url).origin !== origin);
  assert.deepEqual(foreign, [], "the pages fetched from another host");
  assert.ok(seen.requests.some((url) => url.endsWith("/docs/vendor/scalar-api-reference.js")), "Scalar's bundle was not loaded");
  assert.ok(seen.requests.some((url) => url.endsWith("/docs/vendor/asyncapi-react.js")), "the AsyncAPI bundle was not loaded");
  assert.deepEqual(seen.errors, [], "console errors (CSP violations among them) or page errors");
  await context.close();
});
