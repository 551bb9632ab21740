// The page: sign in with a token, then the user's tasks, live. Changes go
// through task-api's REST API and show at once (optimistic overlays in
// TaskStore); every change, this page's and any other screen's, comes back
// through SyncClient in stream order. The list is patched row by row, and
// nothing outside it is ever re-rendered, so typing is never disturbed.

import { ApiError, TaskApi } from "./api.js";
import { type Position, type Task, tokenClaims, tokenExpiry } from "./protocol.js";
import { type PositionStore, SyncClient, type SyncStatus } from "./sync-client.js";
import { TaskStore, type TaskView } from "./task-store.js";

const TOKEN_KEY = "todo-events.token";
/** The user's task list and position (see taskCache). */
const cacheKey = (user: string) => `todo-events.cache.${user}`;

interface PageConfig {
  api_base: string;
  ws_path: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the browser test reads: the offsets applied, in order. */
interface Probe {
  applied: number[];
  client: SyncClient | null;
  store: TaskStore | null;
}
const probe: Probe = { applied: [], client: null, store: null };
(window as unknown as { todoEvents: Probe }).todoEvents = probe;

async function main(): Promise<void> {
  const config = (await (await fetch("config.json")).json()) as PageConfig;
  const token = localStorage.getItem(TOKEN_KEY);
  if (token !== null && usable(token)) signedIn(config, token);
  else showSignIn(token === null ? "" : "That token has expired: paste a fresh one.");
}

/** A token that names a user and has not expired (the server checks the rest). */
function usable(token: string): boolean {
  const exp = tokenExpiry(token);
  return typeof tokenClaims(token)?.["sub"] === "string" && (exp === null || exp * 1000 > Date.now());
}

function showSignIn(message: string): void {
  $("sign-in").hidden = false;
  $("tasks").hidden = true;
  $("sign-out").hidden = true;
  $("sync-state").hidden = true;
  $("user").textContent = "";
  $("sign-in-error").textContent = message;
  const form = $<HTMLFormElement>("sign-in-form");
  form.onsubmit = (e) => {
    e.preventDefault();
    const token = $<HTMLTextAreaElement>("token-input").value.trim();
    if (!usable(token)) {
      $("sign-in-error").textContent = "Not a usable token: it needs a user (sub) and must not have expired.";
      return;
    }
    localStorage.setItem(TOKEN_KEY, token);
    // A fresh start for the new session (a signed-out one may linger).
    location.reload();
  };
}

/** The task list of the token's user, kept live. */
function signedIn(config: PageConfig, token: string): void {
  const user = String(tokenClaims(token)?.["sub"]);
  $("sign-in").hidden = true;
  $("tasks").hidden = false;
  $("sign-out").hidden = false;
  $("sync-state").hidden = false;
  $("user").textContent = user;

  const current = () => localStorage.getItem(TOKEN_KEY);
  const api = new TaskApi(config.api_base, current);
  const store = new TaskStore();
  const cache = taskCache(user, store);
  const cached = cache.loadTasks();
  if (cached !== null) store.finishReload(cached);

  const wsUrl = new URL(config.ws_path, location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
  const client = new SyncClient({
    url: wsUrl.href,
    apiBase: config.api_base,
    store: cache,
    token: () => {
      const t = current();
      return t !== null && usable(t) ? t : null;
    },
    onEvent: (sync) => {
      probe.applied.push(sync.offset);
      if (probe.applied.length > 10_000) probe.applied.splice(0, 5_000);
      store.apply(sync);
    },
    onReset: () => reload(api, store, cache, () => client.position),
    onStatus: (status) => {
      showStatus(status);
      if (status.state === "signed-out") signOut(cache);
    },
  });
  probe.client = client;
  probe.store = store;
  store.subscribe(() => {
    render(store, api);
    showPosition(client.position);
  });
  render(store, api);
  wireAddForm(store, api);
  window.addEventListener("online", () => client.reconnectNow());
  $("sign-out").onclick = () => {
    client.stop();
    signOut(cache);
    location.reload();
  };
  client.start();
}

/** The whole list again (after `reset`, or with nothing cached); retried
 * until it works, since the list is wrong until then. A later reload
 * (another reset) supersedes this one: its list, read later, is the one
 * installed (TaskStore keeps the events meanwhile), and this one stops. */
async function reload(api: TaskApi, store: TaskStore, cache: TaskCache, position: () => Position | null): Promise<void> {
  const ticket = store.beginReload();
  for (let wait = 1000; store.isCurrentReload(ticket); wait = Math.min(wait * 2, 15_000)) {
    try {
      const tasks = await api.list();
      if (!store.finishReload(tasks, ticket)) return;
      const p = position();
      if (p !== null) cache.save(p);
      showError("");
      return;
    } catch (error) {
      if (!store.isCurrentReload(ticket)) return;
      showError(`Could not load the tasks: ${message(error)}. Retrying…`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Forgets the token and the user's cached tasks: nothing of the session
 * stays in this browser's storage. */
function signOut(cache: TaskCache): void {
  localStorage.removeItem(TOKEN_KEY);
  cache.clear();
}

interface TaskCache extends PositionStore {
  loadTasks(): Task[] | null;
  /** Removes the cache, and keeps it removed (a late save writes nothing). */
  clear(): void;
}

/** The position and the tasks it describes, saved together (per user), so
 * a page load shows the list at once and resumes from where it was. While
 * a reload is under way the list is not whole: nothing is kept then. */
function taskCache(user: string, store: TaskStore): TaskCache {
  const key = cacheKey(user);
  let cleared = false;
  const read = (): { position: Position; tasks: Task[] } | null => {
    try {
      return JSON.parse(localStorage.getItem(key) ?? "null") as { position: Position; tasks: Task[] } | null;
    } catch {
      return null;
    }
  };
  return {
    load: () => read()?.position ?? null,
    loadTasks: () => read()?.tasks ?? null,
    save(position) {
      if (cleared) return;
      if (store.isReloading) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify({ position, tasks: store.snapshot() }));
    },
    clear() {
      cleared = true;
      localStorage.removeItem(key);
    },
  };
}

function wireAddForm(store: TaskStore, api: TaskApi): void {
  const input = $<HTMLInputElement>("new-title");
  $<HTMLFormElement>("add-form").onsubmit = (e) => {
    e.preventDefault();
    const title = input.value.trim();
    if (title === "") return;
    input.value = "";
    const key = store.addLocal(title);
    api
      .create(title, newKey())
      .then((task) => store.resolveLocal(key, task))
      .catch((error: unknown) => {
        store.resolveLocal(key, null);
        showError(`Could not add “${title}”: ${message(error)}`);
      });
  };
}

function toggle(store: TaskStore, api: TaskApi, id: string, done: boolean): void {
  store.setOverlay(id, { status: done ? "completed" : "pending" });
  api
    .setDone(id, done)
    .then((task) => store.upsert(task))
    .catch((error: unknown) => showError(`Could not update the task: ${message(error)}`))
    .finally(() => store.clearOverlay(id));
}

function remove(store: TaskStore, api: TaskApi, id: string): void {
  store.setOverlay(id, { deleted: true });
  api
    .remove(id)
    .then(() => store.remove(id))
    .catch((error: unknown) => {
      // Already gone elsewhere: the same end.
      if (error instanceof ApiError && error.status === 404) store.remove(id);
      else showError(`Could not delete the task: ${message(error)}`);
    })
    .finally(() => store.clearOverlay(id));
}

// --- rendering: keyed rows, patched in place --------------------------------

const rows = new Map<string, HTMLLIElement>();

function render(store: TaskStore, api: TaskApi): void {
  const list = $<HTMLUListElement>("list");
  const views = store.view();
  const keep = new Set(views.map((v) => v.key));
  for (const [key, li] of rows) {
    if (!keep.has(key)) {
      li.remove();
      rows.delete(key);
    }
  }
  views.forEach((view, i) => {
    let li = rows.get(view.key);
    if (li === undefined) {
      li = row(view.key, store, api);
      rows.set(view.key, li);
    }
    patch(li, view);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  const open = views.filter((v) => v.status === "pending").length;
  $("counts").textContent = `${open} open · ${views.length - open} done`;
  $("empty").hidden = views.length > 0;
}

function row(key: string, store: TaskStore, api: TaskApi): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "task";
  li.dataset["key"] = key;
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.onchange = () => toggle(store, api, key, box.checked);
  const title = document.createElement("span");
  title.className = "title";
  // Each title is its own bidirectional run: a right-to-left override in
  // one cannot reorder what follows it (style.css isolates it as well).
  title.dir = "auto";
  label.append(box, title);
  const del = document.createElement("button");
  del.type = "button";
  del.className = "delete";
  del.textContent = "×";
  del.onclick = () => remove(store, api, key);
  li.append(label, del);
  return li;
}

function patch(li: HTMLLIElement, view: TaskView): void {
  const [box, title, del] = [li.querySelector("input")!, li.querySelector(".title")!, li.querySelector("button")!];
  if (title.textContent !== view.title) title.textContent = view.title;
  box.checked = view.status === "completed";
  const local = view.key.startsWith("local-");
  box.disabled = local;
  del.disabled = local;
  del.setAttribute("aria-label", `Delete ${view.title}`);
  li.classList.toggle("done", view.status === "completed");
  li.classList.toggle("pending", view.pending);
}

function showStatus(status: SyncStatus): void {
  const pill = $("sync-state");
  pill.dataset["state"] = status.state;
  const labels: Record<SyncStatus["state"], string> = {
    connecting: "connecting…",
    live: "live",
    polling: "polling",
    waiting: "reconnecting…",
    "signed-out": "signed out",
    stopped: "offline",
  };
  pill.textContent = labels[status.state];
  showPosition(status.position);
  if (status.state === "signed-out") {
    showSignIn("Your token has expired or was refused: paste a fresh one.");
  }
}

/** Where the screen is in its stream (the last offset applied). */
function showPosition(p: Position | null): void {
  $("position").textContent = p === null ? "" : `stream ${p.epoch.slice(0, 8)} · offset ${p.offset}`;
}

function showError(text: string): void {
  $("error").textContent = text;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An Idempotency-Key; randomUUID needs a secure context, getRandomValues does not. */
function newKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

void main().catch((error: unknown) => showError(`The page could not start: ${message(error)}`));
