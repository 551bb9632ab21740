// What the browser tests share: the stack's settings, and Debian's
// Chromium (/usr/bin/chromium) launched through the pinned playwright-core
// after checking it is the major that playwright-core drives. Not a test
// file itself (node --test picks *.test.mjs).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

export const STACK = process.env.TODO_EVENTS_STACK === "1";
export const skip = STACK ? false : "needs the local stack (TODO_EVENTS_STACK=1): ./scripts/test runs it";
export const GATEWAY = process.env.SYNC_GATEWAY_URL ?? "http://127.0.0.1:8090";
export const ARTIFACTS = `${process.env.TODO_EVENTS_RUN ?? "/var/tmp/todo-events"}/artifacts`;
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** Debian's Chromium, checked, with the flags this machine needs: no
 * sandbox as root, and no background traffic to hosts the closed network
 * refuses. */
export async function launchChromium() {
  checkChromiumMajor();
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Debian's Chromium must be the major playwright-core was built for. */
function checkChromiumMajor() {
  const version = execFileSync(CHROMIUM, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const have = version.match(/(\d+)\./)?.[1];
  const pkg = new URL("../node_modules/playwright-core/", import.meta.url);
  const browsers = JSON.parse(readFileSync(new URL("browsers.json", pkg), "utf8")).browsers;
  const want = browsers.find((b) => b.name === "chromium").browserVersion.split(".")[0];
  const pinned = JSON.parse(readFileSync(new URL("package.json", pkg), "utf8")).version;
  assert.equal(
    have,
    want,
    `${version.trim()}: Debian moved Chromium to major ${have}, but playwright-core ${pinned} drives Chromium ${want}; ` +
      `pin the playwright-core release built for Chromium ${have} in web/package.json`,
  );
}
