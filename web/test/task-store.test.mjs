// The page's merge of REST answers, events and optimistic changes
// (web/src/task-store.ts), on the compiled module.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TaskStore } from "../dist/task-store.js";

const task = (id, sequence, patch = {}) => ({
  id,
  user_id: "alice",
  title: `task ${id}`,
  description: "",
  status: "pending",
  priority: "medium",
  tags: [],
  due_at: null,
  time_zone: "UTC",
  created_at: `2026-01-01T00:00:0${id.length % 10}Z`,
  updated_at: "2026-01-01T00:00:00Z",
  completed_at: null,
  sequence,
  ...patch,
});
let offset = 0;
const sync = (op, t) => ({ task_id: t.id, user_id: "alice", sequence: t.sequence, epoch: "e", offset: ++offset, op, task: t, changed: [] });
const titles = (store) => store.view().map((v) => `${v.title}:${v.status}${v.pending ? "*" : ""}`);

test("the highest sequence wins, whichever of the answer and the event comes first", () => {
  const store = new TaskStore();
  store.apply(sync("created", task("a", 1)));
  store.upsert(task("a", 2, { status: "completed" }));
  store.apply(sync("completed", task("a", 2, { status: "completed" }))); // its event, later
  store.apply(sync("updated", task("a", 1))); // an old one replayed
  assert.deepEqual(titles(store), ["task a:completed"]);
  assert.equal(store.get("a").sequence, 2);
});

test("a deleted task stays deleted, even if an older answer arrives after", () => {
  const store = new TaskStore();
  store.apply(sync("created", task("a", 1)));
  store.apply(sync("deleted", task("a", 2)));
  store.upsert(task("a", 1));
  assert.deepEqual(store.view(), []);
});

test("a reload keeps the events that arrive while the list is read", () => {
  const store = new TaskStore();
  store.apply(sync("created", task("stale", 1)));
  store.beginReload();
  assert.equal(store.isReloading, true);
  // While the list request runs: b is created, c deleted, d completed.
  store.apply(sync("created", task("b", 1)));
  store.apply(sync("deleted", task("c", 3)));
  store.apply(sync("completed", task("d", 2, { status: "completed" })));
  // The list was read before those changes committed.
  store.finishReload([task("c", 2), task("d", 1), task("e", 4)]);
  assert.equal(store.isReloading, false);
  const ids = store.snapshot().map((t) => t.id).sort();
  assert.deepEqual(ids, ["b", "d", "e"]);
  assert.equal(store.get("d").status, "completed");
});

test("optimistic changes show at once and give way to the server's answer", () => {
  const store = new TaskStore();
  let renders = 0;
  store.subscribe(() => renders++);
  const key = store.addLocal("Buy milk");
  assert.deepEqual(titles(store), ["Buy milk:pending*"]);
  // The event overtakes the answer: the local row goes, the real one stays.
  store.apply(sync("created", task("m", 1, { title: "Buy milk" })));
  assert.deepEqual(titles(store), ["Buy milk:pending"]);
  store.resolveLocal(key, task("m", 1, { title: "Buy milk" }));
  assert.deepEqual(titles(store), ["Buy milk:pending"]);
  // A status shows at once, pending until the request ends.
  store.setOverlay("m", { status: "completed" });
  assert.deepEqual(titles(store), ["Buy milk:completed*"]);
  store.clearOverlay("m"); // the request failed: the server's state shows
  assert.deepEqual(titles(store), ["Buy milk:pending"]);
  store.setOverlay("m", { deleted: true });
  assert.deepEqual(store.view(), []);
  store.remove("m");
  store.clearOverlay("m");
  assert.deepEqual(store.view(), []);
  // A failed create leaves nothing behind.
  const lost = store.addLocal("Never saved");
  store.resolveLocal(lost, null);
  assert.deepEqual(store.view(), []);
  assert.ok(renders >= 9);
});

test("rows: local first, then open newest first, then completed", () => {
  const store = new TaskStore();
  store.upsert(task("a", 1, { created_at: "2026-01-01T00:00:01Z" }));
  store.upsert(task("b", 1, { created_at: "2026-01-01T00:00:02Z" }));
  store.upsert(task("c", 1, { created_at: "2026-01-01T00:00:03Z", status: "completed" }));
  store.addLocal("new");
  assert.deepEqual(store.view().map((v) => v.title), ["new", "task b", "task a", "task c"]);
});

test("overlapping reloads: only the newest list is installed, with every event since the first began", () => {
  const store = new TaskStore();
  const first = store.beginReload(); // after a hello
  store.apply(sync("created", task("x", 1)));
  const second = store.beginReload(); // a reset meanwhile
  assert.equal(store.isCurrentReload(first), false);
  assert.equal(store.isCurrentReload(second), true);
  store.apply(sync("created", task("y", 1)));
  // The first list comes back (read before x and y): superseded, not installed.
  assert.equal(store.finishReload([task("old", 1)], first), false);
  assert.equal(store.isReloading, true);
  store.apply(sync("completed", task("x", 2, { status: "completed" })));
  // The second list was read after x was created, before y and x's completion.
  assert.equal(store.finishReload([task("old", 1), task("x", 1)], second), true);
  assert.equal(store.isReloading, false);
  assert.deepEqual(store.snapshot().map((t) => t.id).sort(), ["old", "x", "y"]);
  assert.equal(store.get("x").status, "completed");
  // A late answer of the first reload changes nothing now.
  assert.equal(store.finishReload([], first), false);
  assert.deepEqual(store.snapshot().map((t) => t.id).sort(), ["old", "x", "y"]);
});
