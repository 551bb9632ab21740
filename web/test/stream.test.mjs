// The ordering contract and the backoff (web/src/stream.ts), on the
// compiled module.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, StreamTracker } from "../dist/stream.js";

const E = "0192f0c1-0000-7000-8000-000000000000";
const at = (offset, epoch = E) => ({ epoch, offset });

test("backoff draws each delay from [0, min(max, base * 2^n)] and starts over after reset", () => {
  const top = new Backoff(100, 1000, () => 0.999999);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => top.next()), [99, 199, 399, 799, 999, 999]);
  assert.equal(top.failures, 6);
  top.reset();
  assert.equal(top.failures, 0);
  assert.equal(top.next(), 99);
  const bottom = new Backoff(100, 1000, () => 0);
  assert.deepEqual([1, 2, 3].map(() => bottom.next()), [0, 0, 0]);
  // Full jitter: over many draws, delays spread over the whole range.
  const real = new Backoff(1000, 1000);
  const draws = Array.from({ length: 2000 }, () => real.next());
  assert.ok(draws.every((d) => d >= 0 && d < 1000));
  assert.ok(Math.min(...draws) < 100 && Math.max(...draws) > 900);
  // A huge attempt count neither overflows nor passes the cap.
  const many = new Backoff(500, 30_000, () => 0.5);
  for (let i = 0; i < 2000; i++) assert.ok(many.next() <= 15_000);
});

test("hello: no position or another epoch reloads, behind resumes, level follows, ahead reloads", () => {
  assert.deepEqual(new StreamTracker(null).hello(at(7), 0), { kind: "reload", to: at(7) });
  assert.deepEqual(new StreamTracker(at(3, "old")).hello(at(7), 0), { kind: "reload", to: at(7) });
  assert.deepEqual(new StreamTracker(at(7)).hello(at(7), 0), { kind: "follow" });
  assert.deepEqual(new StreamTracker(at(3)).hello(at(7), 0), { kind: "resume", from: at(3) });
  // The server is behind the client: its history was rebuilt.
  const ahead = new StreamTracker(at(9));
  assert.deepEqual(ahead.hello(at(7), 0), { kind: "reload", to: at(7) });
  assert.deepEqual(ahead.position, at(7));
});

test("hello after an auth that carried the position: the replay (or reset) comes by itself", () => {
  assert.deepEqual(new StreamTracker(at(7)).hello(at(7), 0, at(7)), { kind: "follow" });
  const behind = new StreamTracker(at(3), 1000);
  assert.deepEqual(behind.hello(at(7), 0, at(3)), { kind: "replaying" });
  // A live event before the replay would be a gap: it waits, asking nothing.
  assert.deepEqual(behind.event(at(8), 10), { kind: "wait" });
  assert.deepEqual(behind.event(at(4), 20), { kind: "apply" });
  // Another epoch, or ahead: the gateway's reset follows; nothing is reloaded yet.
  const other = new StreamTracker(at(3, "old"));
  assert.deepEqual(other.hello(at(7), 0, at(3, "old")), { kind: "replaying" });
  assert.deepEqual(other.position, at(3, "old"));
  assert.deepEqual(new StreamTracker(at(9)).hello(at(7), 0, at(9)), { kind: "replaying" });
});

test("events: the next applies, older ones are duplicates, a gap asks for one resume", () => {
  const t = new StreamTracker(at(4), 1000);
  assert.deepEqual(t.event(at(5), 0), { kind: "apply" });
  assert.deepEqual(t.position, at(5));
  assert.deepEqual(t.event(at(5), 0), { kind: "duplicate" });
  assert.deepEqual(t.event(at(2), 0), { kind: "duplicate" });
  assert.deepEqual(t.event(at(8), 10), { kind: "resume", from: at(5) });
  // The resume is on its way: later gaps wait for its replay ...
  assert.deepEqual(t.event(at(9), 20), { kind: "wait" });
  // ... unless it took too long.
  assert.deepEqual(t.event(at(9), 1010), { kind: "resume", from: at(5) });
  // The replay arrives in order; the position moves; a new gap asks again.
  assert.deepEqual(t.event(at(6), 1020), { kind: "apply" });
  assert.deepEqual(t.event(at(8), 1030), { kind: "resume", from: at(6) });
  // Another epoch is a gap too (the gateway answers the resume with reset).
  const u = new StreamTracker(at(6), 1000);
  assert.deepEqual(u.event(at(7, "new"), 0), { kind: "resume", from: at(6) });
  u.reset(at(2, "new"));
  assert.deepEqual(u.event(at(3, "new"), 0), { kind: "apply" });
  // A new connection forgets the resume of the old one.
  const v = new StreamTracker(at(1), 1000);
  v.event(at(3), 0);
  v.disconnected();
  assert.deepEqual(v.event(at(3), 1), { kind: "resume", from: at(1) });
});

// A small deterministic PRNG, so a failure names its seed.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test("whatever the live stream drops, repeats or reorders, resumes apply each offset once, in order", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const random = rng(seed);
    const n = 1 + Math.floor(random() * 40);
    const start = Math.floor(random() * 5);
    const t = new StreamTracker(at(start), 50);
    const applied = [];
    // The live stream as a flaky network might show it.
    const live = [];
    for (let o = start + 1; o <= n + start; o++) {
      if (random() < 0.2) continue; // lost
      live.push(o);
      if (random() < 0.2) live.push(o); // repeated
      if (random() < 0.1) live.push(start + 1 + Math.floor(random() * (o - start))); // an old one again
    }
    for (let i = 0; i < live.length; i++) {
      if (random() < 0.15 && i + 1 < live.length) [live[i], live[i + 1]] = [live[i + 1], live[i]];
    }
    // The gateway: a resume replays every offset after `from`, in order,
    // before the live stream goes on.
    const queue = live.map((o) => ({ o, now: 0 }));
    let now = 0;
    while (queue.length > 0) {
      const { o } = queue.shift();
      now += 1;
      const action = t.event(at(o), now);
      if (action.kind === "apply") applied.push(o);
      if (action.kind === "resume") {
        const replay = [];
        for (let r = action.from.offset + 1; r <= n + start; r++) replay.push({ o: r, now });
        queue.unshift(...replay);
      }
    }
    // The stream's end may have been lost too: the next hello says where it is.
    const hello = t.hello(at(n + start), now + 1);
    if (hello.kind === "resume") {
      for (let r = hello.from.offset + 1; r <= n + start; r++) {
        assert.equal(t.event(at(r), now + 2).kind, "apply");
        applied.push(r);
      }
    }
    const expected = Array.from({ length: n }, (_, i) => start + 1 + i);
    assert.deepEqual(applied, expected, `seed ${seed}`);
  }
});

test("close codes: refused messages stop, token codes re-authenticate, the rest resume", async () => {
  const { afterClose } = await import("../dist/protocol.js");
  for (const code of [4400, 1009]) assert.equal(afterClose(code), "stop", String(code));
  for (const code of [4401, 4402]) assert.equal(afterClose(code), "reauthenticate", String(code));
  for (const code of [1000, 1001, 1006, 1011, 1013, 4408, 4429]) assert.equal(afterClose(code), "resume", String(code));
});
