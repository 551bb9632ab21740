// SyncClient (web/src/sync-client.ts) against a scripted gateway: a fake
// WebSocket class and a fake change feed, real (tiny) timers.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { MAX_TIMER_MS, SyncClient, memoryPositions } from "../dist/sync-client.js";

const E = "0192f0c1-0000-7000-8000-000000000000";

/** A socket the test plays the gateway on. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  static get last() {
    return FakeSocket.all.at(-1);
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  say(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  event(offset, epoch = E) {
    this.say({ type: "event", epoch, offset, data: sync(offset, epoch) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
}

const sync = (offset, epoch = E) => ({
  task_id: `t${offset}`,
  user_id: "alice",
  sequence: 1,
  epoch,
  offset,
  op: "created",
  task: null,
  changed: [],
});

async function until(what, cond) {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

// Every client a test made is stopped after it, passed or failed, so no
// timer keeps the run alive.
const clients = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.stop();
});

function harness({ position = null, token = () => "tok-1", fetch, ...options } = {}) {
  FakeSocket.all = [];
  const applied = [];
  const resets = [];
  const states = [];
  const store = memoryPositions();
  if (position) store.save(position);
  const client = new SyncClient({
    url: "ws://gw/ws/tasks",
    apiBase: "http://api",
    token,
    store,
    onEvent: (s) => applied.push(s.offset),
    onReset: (p) => resets.push(p),
    onStatus: (s) => states.push(s.state),
    WebSocket: FakeSocket,
    fetch: fetch ?? (() => Promise.reject(new Error("no feed in this test"))),
    backoffBaseMs: 2,
    backoffMaxMs: 4,
    pollIntervalMs: 5,
    random: () => 0.5,
    ...options,
  });
  clients.push(client);
  return { client, applied, resets, states, store };
}

test("auth first, hello, events once each in order, a gap asks for a resume", async () => {
  const h = harness();
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  const ws = FakeSocket.last;
  assert.equal(ws.url, "ws://gw/ws/tasks");
  ws.open();
  assert.deepEqual(ws.sent, [{ type: "auth", token: "tok-1" }]);
  ws.say({ type: "hello", epoch: E, offset: 3 });
  await until("the reload", () => h.resets.length === 1);
  assert.deepEqual(h.resets, [{ epoch: E, offset: 3 }]);
  assert.equal(h.client.status.state, "live");
  ws.event(4);
  ws.event(4); // a duplicate
  ws.event(6); // 5 is missing
  ws.event(7); // still missing: the resume is on its way
  assert.deepEqual(ws.sent.slice(1), [{ type: "resume", epoch: E, offset: 4 }]);
  // The gateway's replay, then live.
  for (const o of [5, 6, 7, 8]) ws.event(o);
  assert.deepEqual(h.applied, [4, 5, 6, 7, 8]);
  assert.deepEqual(h.store.load(), { epoch: E, offset: 8 });
  ws.say({ type: "reset", epoch: E, offset: 20 });
  await until("the second reload", () => h.resets.length === 2);
  ws.event(21);
  assert.deepEqual(h.applied.at(-1), 21);
  h.client.stop();
});

test("a lost socket reconnects after a backoff and resumes from the stored position", async () => {
  const h = harness({ position: { epoch: E, offset: 10 } });
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  let ws = FakeSocket.last;
  ws.open();
  // The position goes with the auth; the gateway replays after hello.
  assert.deepEqual(ws.sent, [{ type: "auth", token: "tok-1", resume: { epoch: E, offset: 10 } }]);
  ws.say({ type: "hello", epoch: E, offset: 12 });
  ws.event(11);
  ws.drop(1001); // going away, mid-replay
  await until("a second socket", () => FakeSocket.all.length === 2);
  ws = FakeSocket.last;
  ws.open();
  ws.say({ type: "hello", epoch: E, offset: 13 });
  assert.deepEqual(ws.sent, [{ type: "auth", token: "tok-1", resume: { epoch: E, offset: 11 } }]);
  for (const o of [12, 13]) ws.event(o);
  assert.deepEqual(h.applied, [11, 12, 13]);
  assert.deepEqual(h.resets, []);
  assert.ok(h.states.includes("waiting"));
  h.client.stop();
});

test("an expired token asks the provider for a fresh one; the same one again signs out", async () => {
  const tokens = ["tok-1", "tok-2", "tok-2"];
  const reasons = [];
  const h = harness({
    position: { epoch: E, offset: 1 },
    token: (reason) => {
      reasons.push(reason);
      return tokens.shift() ?? null;
    },
  });
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  FakeSocket.last.open();
  FakeSocket.last.say({ type: "hello", epoch: E, offset: 1 });
  FakeSocket.last.drop(4402);
  await until("a socket with the fresh token", () => FakeSocket.all.length === 2);
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.sent, [{ type: "auth", token: "tok-2", resume: { epoch: E, offset: 1 } }]);
  FakeSocket.last.drop(4402);
  await until("signed out", () => h.client.status.state === "signed-out");
  assert.deepEqual(reasons, ["connect", "expired", "expired"]);
  assert.equal(FakeSocket.all.length, 2);
  // A new token starts it again.
  tokens.push("tok-3");
  h.client.setToken("tok-3");
  await until("a third socket", () => FakeSocket.all.length === 3);
  FakeSocket.last.open();
  assert.deepEqual(FakeSocket.last.sent, [{ type: "auth", token: "tok-3", resume: { epoch: E, offset: 1 } }]);
  h.client.stop();
});

test("a socket that cannot connect falls back to the change feed, then back to the socket", async () => {
  // The feed: offsets 6..8 after 5, then nothing new.
  const calls = [];
  const feed = async (url, init) => {
    calls.push({ url, auth: init.headers.authorization });
    const after = Number(new URL(url).searchParams.get("after"));
    const events = [6, 7, 8].filter((o) => o > after).map((o) => ({ data: sync(o) }));
    return new Response(JSON.stringify({ epoch: E, events, next_offset: Math.max(after, 8) }), { status: 200 });
  };
  const h = harness({ position: { epoch: E, offset: 5 }, fetch: feed });
  h.client.start();
  // Two attempts that never open.
  await until("a socket", () => FakeSocket.all.length === 1);
  FakeSocket.last.drop(1006);
  await until("a second socket", () => FakeSocket.all.length === 2);
  FakeSocket.last.drop(1006);
  await until("the feed's events", () => h.applied.length === 3);
  assert.deepEqual(h.applied, [6, 7, 8]);
  assert.equal(calls[0].url, `http://api/api/changes?epoch=${E}&after=5&limit=500`);
  assert.equal(calls[0].auth, "Bearer tok-1");
  assert.equal(h.client.status.state, "polling");
  // The socket comes back: polling stops, the socket resumes where polling left off.
  await until("another socket", () => FakeSocket.all.length === 3);
  const ws = FakeSocket.last;
  ws.open();
  ws.say({ type: "hello", epoch: E, offset: 9 });
  assert.equal(h.client.status.state, "live");
  assert.deepEqual(ws.sent, [{ type: "auth", token: "tok-1", resume: { epoch: E, offset: 8 } }]);
  const polled = calls.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls.length, polled, "polling goes on after the socket said hello");
  ws.event(9);
  assert.deepEqual(h.applied, [6, 7, 8, 9]);
  h.client.stop();
});

test("a reset from the feed reloads at the head; a refused token stops polling", async () => {
  let refuse = false;
  const feed = async (url) => {
    if (refuse) return new Response("{}", { status: 401 });
    const body = new URL(url).searchParams.has("after")
      ? { reset: true, epoch: "new-epoch" }
      : { epoch: "new-epoch", events: [], next_offset: 42 };
    return new Response(JSON.stringify(body), { status: 200 });
  };
  const h = harness({ position: { epoch: E, offset: 5 }, fetch: feed, token: () => "tok-1" });
  h.client.start();
  await until("a socket", () => FakeSocket.all.length === 1);
  FakeSocket.last.drop(1006);
  await until("a second socket", () => FakeSocket.all.length === 2);
  FakeSocket.last.drop(1006);
  await until("the reload", () => h.resets.length === 1);
  assert.deepEqual(h.resets, [{ epoch: "new-epoch", offset: 42 }]);
  refuse = true;
  await until("signed out", () => h.client.status.state === "signed-out");
  h.client.stop();
});

test("4400 stops; stop() closes everything", async () => {
  const h = harness();
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  FakeSocket.last.open();
  FakeSocket.last.drop(4400);
  await until("stopped", () => h.client.status.state === "stopped");
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(FakeSocket.all.length, 1);
});

test("a reset starts the reload before the new position is saved", async () => {
  FakeSocket.all = [];
  const order = [];
  const client = new SyncClient({
    url: "ws://gw/ws/tasks",
    apiBase: "http://api",
    token: () => "tok-1",
    store: { load: () => ({ epoch: E, offset: 3 }), save: (p) => order.push(`save ${p.offset}`) },
    onEvent: () => order.push("event"),
    onReset: (p) => order.push(`reload ${p.offset}`),
    WebSocket: FakeSocket,
  });
  client.start();
  await until("a socket", () => FakeSocket.last);
  FakeSocket.last.open();
  // The position of another epoch went with the auth: the gateway resets.
  FakeSocket.last.say({ type: "hello", epoch: "other", offset: 9 });
  assert.deepEqual(order, []);
  FakeSocket.last.say({ type: "reset", epoch: "other", offset: 9 });
  FakeSocket.last.event(10, "other");
  assert.deepEqual(order, ["reload 9", "save 9", "event", "save 10"]);
  client.stop();
});

test("pings while live; a socket silent for two periods is dropped and replaced", async () => {
  const h = harness({ position: { epoch: E, offset: 1 }, heartbeatMs: 15 });
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  const ws = FakeSocket.last;
  ws.open();
  ws.say({ type: "hello", epoch: E, offset: 1 });
  await until("a ping", () => ws.sent.some((m) => m.type === "ping"));
  // The gateway answers nothing from now on.
  await until("a new socket", () => FakeSocket.all.length === 2);
  assert.equal(h.client.status.lastClose, 1006);
  FakeSocket.last.open();
  FakeSocket.last.say({ type: "hello", epoch: E, offset: 1 });
  assert.equal(h.client.status.state, "live");
  h.client.stop();
});

test("a socket that opens but never says hello counts as a failed attempt", async () => {
  const h = harness({ position: { epoch: E, offset: 1 }, helloTimeoutMs: 10 });
  h.client.start();
  await until("a socket", () => FakeSocket.last);
  FakeSocket.last.open();
  await until("a second socket", () => FakeSocket.all.length === 2);
  assert.equal(h.client.status.failures, 1);
  h.client.stop();
});

test("a token valid for longer than a timer can wait is refreshed in hops, never at once", async () => {
  const day = 86_400_000;
  let now = Date.UTC(2026, 0, 1);
  const exp = Math.floor((now + 40 * day) / 1000);
  const payload = Buffer.from(JSON.stringify({ sub: "alice", exp })).toString("base64url");
  const token = `h.${payload}.s`;
  const asked = [];
  // Long timers are caught here (a real one would fire at once or keep
  // the run alive); short ones are the real thing.
  const long = [];
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = (f, ms, ...args) => {
    if (ms > 60_000) {
      long.push({ f, ms });
      return realSetTimeout(() => undefined, 0);
    }
    return realSetTimeout(f, ms, ...args);
  };
  try {
    const h = harness({
      now: () => now,
      token: (reason) => {
        asked.push(reason);
        return reason === "refresh" ? "tok-2" : token;
      },
    });
    h.client.start();
    await until("a socket", () => FakeSocket.last);
    const ws = FakeSocket.last;
    ws.open();
    ws.say({ type: "hello", epoch: E, offset: 0 });
    const refresh = () => long;
    assert.deepEqual(refresh().map((t) => t.ms), [MAX_TIMER_MS]);
    now += MAX_TIMER_MS;
    refresh()[0].f();
    const left = 40 * day - 30_000 - MAX_TIMER_MS;
    assert.deepEqual(refresh().map((t) => t.ms), [MAX_TIMER_MS, left]);
    assert.deepEqual(asked, ["connect"]);
    now += left;
    refresh()[1].f();
    await until("the refresh", () => ws.sent.some((m) => m.token === "tok-2"));
    assert.deepEqual(asked, ["connect", "refresh"]);
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
});
