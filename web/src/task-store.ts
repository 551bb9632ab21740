// The page's task list: server tasks merged with the sync events by each
// task's `sequence`, plus the user's optimistic changes until the server
// answers. Pure state, no DOM and no network, so the unit tests drive it.
//
// - An event or a REST answer replaces a task only when it carries a
//   higher sequence: the same change arriving twice (the REST answer and
//   its event, or a replay) applies once, and an older one never wins.
// - A deleted id is remembered, so a late answer cannot bring it back.
// - During a reload (after `reset`), events are applied and also kept; the
//   reloaded list replaces the tasks, then those events are applied again,
//   so whatever changed while the list was read is not lost. Reloads may
//   overlap (a hello's reload, then a reset): each has a ticket, only the
//   newest one's list is installed (an older one was read earlier, maybe
//   before events applied since), and the events are kept from the first
//   of them until that newest list is in.
// - Optimistic changes are overlays on top of the server state: a new task
//   under a local key, a status, a deletion. Each is dropped when its
//   request ends (the answer or the event is then the truth), so a failed
//   request leaves the server's state showing.

import type { Task, TaskSync } from "./protocol.js";

/** What the page shows for one row. */
export interface TaskView {
  /** The task id, or a local key for a task not yet created. */
  key: string;
  title: string;
  status: Task["status"];
  /** A request for this row is in flight. */
  pending: boolean;
  createdAt: string;
  sequence: number;
}

type Overlay = { status: Task["status"] } | { deleted: true };

interface LocalTask {
  key: string;
  title: string;
  createdAt: string;
}

export class TaskStore {
  private readonly tasks = new Map<string, Task>();
  private readonly deleted = new Set<string>();
  private readonly overlays = new Map<string, Overlay>();
  private readonly locals = new Map<string, LocalTask>();
  private reloading: TaskSync[] | null = null;
  /** The ticket of the newest reload. */
  private reloadTicket = 0;
  private nextLocal = 0;
  private readonly listeners = new Set<() => void>();

  /** Called after every change. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether a reload is under way (the tasks are not yet a whole list). */
  get isReloading(): boolean {
    return this.reloading !== null;
  }

  /** One stream event, in offset order. */
  apply(sync: TaskSync): void {
    this.reloading?.push(sync);
    this.merge(sync);
    if (sync.op === "created" && sync.task) this.adoptLocal(sync.task);
    this.changed();
  }

  /** A reload starts: events from now on are kept for finishReload.
   * Returns its ticket; a later beginReload supersedes it. */
  beginReload(): number {
    this.reloading ??= [];
    return ++this.reloadTicket;
  }

  /** Whether the reload of `ticket` is the newest and not yet finished
   * (else its list would be stale: drop it, stop retrying). */
  isCurrentReload(ticket: number): boolean {
    return this.reloading !== null && ticket === this.reloadTicket;
  }

  /** The whole list, read after beginReload returned `ticket` (by default
   * the newest; with no reload under way, a list to start from, such as a
   * cache). Returns false, installing nothing, when a later reload
   * superseded this one. */
  finishReload(tasks: Task[], ticket = this.reloadTicket): boolean {
    if (ticket !== this.reloadTicket) return false;
    const since = this.reloading ?? [];
    this.reloading = null;
    this.tasks.clear();
    for (const task of tasks) if (!this.deleted.has(task.id)) this.tasks.set(task.id, task);
    for (const sync of since) this.merge(sync);
    this.changed();
    return true;
  }

  /** A reload that failed: the list stays as it was; events are no longer kept. */
  abandonReload(): void {
    this.reloading = null;
  }

  /** Server tasks (no optimistic state): what a cache may keep. */
  snapshot(): Task[] {
    return [...this.tasks.values()];
  }

  /** A task as a REST call returned it. */
  upsert(task: Task): void {
    this.put(task);
    this.changed();
  }

  /** The server confirmed the task is gone. */
  remove(id: string): void {
    this.forget(id);
    this.changed();
  }

  /** Shows a new task at once; returns its local key. */
  addLocal(title: string, now = new Date()): string {
    const key = `local-${++this.nextLocal}`;
    this.locals.set(key, { key, title, createdAt: now.toISOString() });
    this.changed();
    return key;
  }

  /** The create request ended: with the task, or null when it failed. */
  resolveLocal(key: string, task: Task | null): void {
    this.locals.delete(key);
    if (task) this.put(task);
    this.changed();
  }

  /** Shows a status or a deletion at once, until clearOverlay. */
  setOverlay(id: string, overlay: Overlay): void {
    this.overlays.set(id, overlay);
    this.changed();
  }

  clearOverlay(id: string): void {
    this.overlays.delete(id);
    this.changed();
  }

  get(id: string): Task | undefined {
    return this.tasks.get(id);
  }

  /** The rows to show: local tasks first, then open ones, newest first,
   * then completed ones. */
  view(): TaskView[] {
    const rows: TaskView[] = [];
    for (const local of this.locals.values()) {
      rows.push({ key: local.key, title: local.title, status: "pending", pending: true, createdAt: local.createdAt, sequence: 0 });
    }
    for (const task of this.tasks.values()) {
      const overlay = this.overlays.get(task.id);
      if (overlay && "deleted" in overlay) continue;
      rows.push({
        key: task.id,
        title: task.title,
        status: overlay?.status ?? task.status,
        pending: overlay !== undefined,
        createdAt: task.created_at,
        sequence: task.sequence,
      });
    }
    const local = (r: TaskView) => (r.key.startsWith("local-") ? 0 : 1);
    const done = (r: TaskView) => (r.status === "completed" ? 1 : 0);
    return rows.sort(
      (a, b) =>
        local(a) - local(b) || done(a) - done(b) || b.createdAt.localeCompare(a.createdAt) || a.key.localeCompare(b.key),
    );
  }

  private merge(sync: TaskSync): void {
    if (sync.op === "deleted") this.forget(sync.task_id);
    else if (sync.task) this.put(sync.task);
  }

  private put(task: Task): void {
    if (this.deleted.has(task.id)) return;
    const current = this.tasks.get(task.id);
    if (current === undefined || current.sequence < task.sequence) this.tasks.set(task.id, task);
  }

  private forget(id: string): void {
    this.tasks.delete(id);
    this.overlays.delete(id);
    this.deleted.add(id);
  }

  /** The event of a task this page is still creating, matched by title
   * (the id is not known before the answer): its local row goes, the real
   * one is there now, and the answer then changes nothing. If the event
   * was another screen's task of the same title, the local row's own
   * answer adds its task a moment later: a flicker, never a loss or a
   * duplicate. */
  private adoptLocal(task: Task): void {
    for (const local of this.locals.values()) {
      if (local.title === task.title) {
        this.locals.delete(local.key);
        return;
      }
    }
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
