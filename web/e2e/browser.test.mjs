// The page in headless Chromium (Debian's /usr/bin/chromium, driven by the
// pinned playwright-core) against the real local stack: sync-gateway serves
// the page and the socket, task-api the REST API and the change feed.
//
//   - two screens of one user: a task added on one appears on the other,
//     completions and deletions too; typing on the other is not disturbed;
//   - the gateway stopped and started again while the API writes, polling
//     blocked: the changes arrive through the socket's resume, in order,
//     each once;
//   - a screen whose socket cannot connect polls the change feed, then
//     goes back to the socket.
//
// scripts/test runs it (`npm run test:browser` in web/) with the stack's
// environment; without TODO_EVENTS_STACK=1 every test is skipped, never
// passed. A screenshot of the page lands in $TODO_EVENTS_RUN/artifacts.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ARTIFACTS, GATEWAY, STACK, launchChromium, skip } from "./chromium.mjs";

const API = process.env.TASK_API_URL ?? "http://127.0.0.1:8080";
const DEV = process.env.TODO_EVENTS_DEV ?? fileURLToPath(new URL("../../scripts/dev", import.meta.url));
const TIMEOUT = 120_000;

let browser;
const user = `web-e2e-${randomUUID()}`;
let token;

before(async () => {
  if (!STACK) return;
  token = execFileSync(DEV, ["token", user], { encoding: "utf8" }).trim();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** A token of the test's user that expires in `seconds`, signed with the
 * stack's dev secret (scripts/lib/jwt.py's claims). */
function shortToken(seconds) {
  const secret = process.env.JWT_HS256_SECRET;
  assert.ok(secret, "JWT_HS256_SECRET (.dev/env) is needed to sign a short-lived token");
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: user, iat: now, exp: now + seconds, roles: [] };
  if (process.env.JWT_ISSUER) claims.iss = process.env.JWT_ISSUER;
  if (process.env.JWT_AUDIENCE) claims.aud = process.env.JWT_AUDIENCE;
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** task-api, as another screen or device would call it. */
async function rest(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${API}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text === "" ? null : JSON.parse(text);
}

/** A signed-in screen of the test's user. */
async function screen(context, withToken = token) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(`${GATEWAY}/`);
  await page.locator("#token-input").fill(withToken);
  await page.locator("#sign-in-form button").click();
  await page.locator("#tasks").waitFor();
  return page;
}

const live = (page) => page.locator('#sync-state[data-state="live"]').waitFor({ timeout: 60_000 });
const row = (page, title) => page.locator("#list .task").filter({ has: page.locator(".title", { hasText: new RegExp(`^${title}$`) }) });
const applied = (page) => page.evaluate(() => window.todoEvents.applied.slice());

/** The position a client frame asks to resume from: a `resume`, or the
 * one an `auth` carries. */
function resumeOf(message) {
  if (message.type === "resume") return { epoch: message.epoch, offset: message.offset };
  return message.type === "auth" && message.resume ? message.resume : null;
}

/** Each offset once, each the last plus one. */
function assertInOrderOnce(offsets, what) {
  assert.ok(offsets.length > 0, `${what}: no event applied`);
  offsets.forEach((o, i) => i === 0 || assert.equal(o, offsets[i - 1] + 1, `${what}: ${offsets.join(",")}`));
}

/** Waits until the row shows exactly once (and stays so for a moment). */
async function shownOnce(page, title) {
  await row(page, title).first().waitFor({ timeout: 30_000 });
  await page.waitForTimeout(300);
  assert.equal(await row(page, title).count(), 1, `${title} shown more than once`);
}

let a;
let b;

test("two screens of one user: a task added on one appears on the other; typing is not disturbed", { skip, timeout: TIMEOUT }, async () => {
  a = await screen(await browser.newContext());
  b = await screen(await browser.newContext());
  await Promise.all([live(a), live(b)]);

  // Screen B is in the middle of typing.
  await b.locator("#new-title").click();
  await b.locator("#new-title").pressSequentially("half-typ");

  await a.locator("#new-title").fill("Buy milk");
  await a.locator("#new-title").press("Enter");
  await shownOnce(b, "Buy milk");
  await shownOnce(a, "Buy milk");

  // The keyboard reaches a row's delete button, which shows while focused.
  await a.locator("#list .task:not(.pending) .title", { hasText: /^Buy milk$/ }).waitFor();
  await row(a, "Buy milk").locator("input[type=checkbox]").focus();
  await a.keyboard.press("Tab");
  const focused = await a.evaluate(() => {
    const e = document.activeElement;
    return { className: e?.className, label: e?.getAttribute("aria-label"), opacity: e && getComputedStyle(e).opacity };
  });
  assert.deepEqual(focused, { className: "delete", label: "Delete Buy milk", opacity: "1" });

  // Completed on A, seen done on B; a task made elsewhere and deleted on A goes from B.
  await row(a, "Buy milk").locator("input[type=checkbox]").check();
  await b.locator("#list .task.done .title", { hasText: "Buy milk" }).waitFor();
  await rest("POST", "/api/tasks", { title: "Call the plumber" });
  await shownOnce(a, "Call the plumber");
  await shownOnce(b, "Call the plumber");
  await row(a, "Call the plumber").hover();
  await row(a, "Call the plumber").locator("button.delete").click();
  await row(b, "Call the plumber").waitFor({ state: "detached" });

  // B's input kept its text and its focus through all of that.
  assert.equal(await b.locator("#new-title").inputValue(), "half-typ");
  assert.equal(await b.evaluate(() => document.activeElement?.id), "new-title");
  await b.locator("#new-title").pressSequentially("ed");
  assert.equal(await b.locator("#new-title").inputValue(), "half-typed");

  assertInOrderOnce(await applied(a), "screen A");
  assertInOrderOnce(await applied(b), "screen B");
});

test("the gateway stopped while the API writes: the changes arrive by resume, in order, each once", { skip, timeout: TIMEOUT }, async () => {
  assert.ok(a && b, "needs the screens of the first test");
  // Only the socket may catch up: the polling fallback is blocked.
  for (const page of [a, b]) await page.context().route("**/api/changes**", (route) => route.abort());
  const resumes = [];
  b.on("websocket", (ws) =>
    ws.on("framesent", (frame) => {
      const position = resumeOf(JSON.parse(String(frame.payload)));
      if (position) resumes.push(position);
    }),
  );
  const before = (await applied(b)).length;

  execFileSync(DEV, ["app", "stop", "sync-gateway"], { stdio: "inherit" });
  try {
    await b.locator('#sync-state:not([data-state="live"])').waitFor();
    const made = [];
    for (const n of [1, 2, 3, 4, 5]) made.push(await rest("POST", "/api/tasks", { title: `Offline ${n}` }));
    await rest("POST", `/api/tasks/${made[1].id}/complete`);
    await rest("DELETE", `/api/tasks/${made[2].id}`);
  } finally {
    execFileSync(DEV, ["app", "start", "sync-gateway"], { stdio: "inherit" });
  }

  for (const page of [a, b]) {
    await live(page);
    for (const n of [1, 2, 4, 5]) await shownOnce(page, `Offline ${n}`);
    await page.locator("#list .task.done .title", { hasText: "Offline 2" }).waitFor();
    await row(page, "Offline 3").waitFor({ state: "detached" });
  }
  // 5 creates, a completion and a deletion: 7 events after the cut, by resume.
  const offsets = await applied(b);
  assertInOrderOnce(offsets, "screen B");
  assert.equal(offsets.length - before, 7, `screen B applied ${offsets.slice(before).join(",")}`);
  assertInOrderOnce(await applied(a), "screen A");
  assert.ok(resumes.length > 0, "screen B never asked to resume");
  assert.equal(resumes[0].epoch, (await b.evaluate(() => window.todoEvents.client.position)).epoch);

  mkdirSync(ARTIFACTS, { recursive: true });
  await b.setViewportSize({ width: 900, height: 640 });
  await b.screenshot({ path: `${ARTIFACTS}/web-tasks.png` });
  for (const page of [a, b]) await page.context().unroute("**/api/changes**");
});

test("a screen whose socket cannot connect polls the change feed, then goes back to the socket", { skip, timeout: TIMEOUT }, async () => {
  const context = await browser.newContext();
  let blocked = true;
  await context.routeWebSocket(/\/ws\/tasks$/, (ws) => {
    if (blocked) void ws.close({ code: 1013, reason: "blocked by the test" });
    else ws.connectToServer();
  });
  const c = await screen(context);
  await c.locator('#sync-state[data-state="polling"]').waitFor({ timeout: 30_000 });
  // The head from the feed, then the whole list.
  await shownOnce(c, "Buy milk");

  await rest("POST", "/api/tasks", { title: "Polled 1" });
  await rest("POST", "/api/tasks", { title: "Polled 2" });
  await shownOnce(c, "Polled 1");
  await shownOnce(c, "Polled 2");
  assert.equal(await c.locator("#sync-state").getAttribute("data-state"), "polling");

  // The socket can connect again; the browser's online event skips the wait.
  blocked = false;
  await c.evaluate(() => window.dispatchEvent(new Event("online")));
  await live(c);
  await rest("POST", "/api/tasks", { title: "Live again" });
  await shownOnce(c, "Live again");
  assertInOrderOnce(await applied(c), "screen C");
  await context.close();
});

test("an expired token: the gateway closes with 4402, the page signs out and forgets the list, a fresh token starts afresh", { skip, timeout: TIMEOUT }, async () => {
  const context = await browser.newContext();
  const sent = [];
  const d = await screen(context, shortToken(8));
  d.on("websocket", (ws) => ws.on("framesent", (frame) => sent.push(JSON.parse(String(frame.payload)))));
  await live(d);

  // At exp the gateway closes the socket (4402); the page has no fresh token.
  await d.locator("#sign-in").waitFor({ timeout: 30_000 });
  assert.match(await d.locator("#sign-in-error").textContent(), /expired/);
  assert.equal(await d.evaluate(() => window.todoEvents.client.status.lastClose), 4402);
  // Signed out: neither the token nor the user's task list stays in storage.
  const kept = await d.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("todo-events.")));
  assert.deepEqual(kept, []);
  await rest("POST", "/api/tasks", { title: "While signed out" });

  // A fresh token: nothing was kept, so the page reads the whole list
  // (its auth carries no position to resume from).
  const mark = sent.length;
  await d.locator("#token-input").fill(token);
  await d.locator("#sign-in-form button").click();
  await live(d);
  await shownOnce(d, "While signed out");
  const auths = sent.slice(mark).filter((m) => m.type === "auth");
  assert.ok(auths.length > 0, `no auth sent: ${JSON.stringify(sent)}`);
  assert.equal(auths[0].resume, undefined);
  // And it follows live from there.
  await rest("POST", "/api/tasks", { title: "After signing in again" });
  await shownOnce(d, "After signing in again");
  assertInOrderOnce(await applied(d), "screen D");
  await context.close();
});
