// A reusable client of the sync gateway's /ws/tasks, for any frontend:
//
//   const client = new SyncClient({
//     url: "wss://todo.example.com/ws/tasks",
//     apiBase: "https://todo.example.com",          // for the polling fallback
//     token: () => auth.currentToken(),              // or null: signed out
//     store: localStoragePositions("todo-events.sync.alice"),
//     onEvent: (sync) => tasks.apply(sync),          // in offset order, once each
//     onReset: () => tasks.reload(),                 // refetch the list
//     onStatus: (s) => banner.show(s.state),
//   });
//   client.start();
//
// It authenticates with a first `auth` message (never a token in the
// URL) that carries its stored (epoch, offset), so the gateway replays
// what it missed right after `hello` (or says `reset`). It applies each
// event only when it is the next offset (a smaller one is a duplicate, a
// larger one a gap, answered with `resume`), and calls onReset on `reset`
// (or when it has no position yet). A lost socket reconnects with exponential
// backoff and full jitter and resumes; 4401/4402 ask the token provider
// for a fresh token first. While the socket cannot connect at all it polls
// GET /api/changes (the same stream), and goes back to the socket as soon
// as one says hello.

import {
  afterClose,
  type ClientMessage,
  type FeedPage,
  parseServerMessage,
  type Position,
  type ServerMessage,
  type TaskSync,
  tokenExpiry,
} from "./protocol.js";
import { Backoff, StreamTracker } from "./stream.js";

export type { Position, TaskSync } from "./protocol.js";

/** Where the client keeps its position between connections and page
 * loads. Keep it beside whatever the events were applied to, or the two
 * disagree after a reload: `save` comes after each onEvent, and after
 * onReset has started (not finished) its reload. */
export interface PositionStore {
  load(): Position | null;
  save(position: Position): void;
}

/** A position kept in memory only (a page reload starts from the head). */
export function memoryPositions(): PositionStore {
  let kept: Position | null = null;
  return {
    load: () => kept,
    save: (p) => {
      kept = { ...p };
    },
  };
}

/** A position kept in localStorage under `key` (one key per user). */
export function localStoragePositions(key: string, storage: Storage = localStorage): PositionStore {
  return {
    load() {
      try {
        const p = JSON.parse(storage.getItem(key) ?? "null") as Position | null;
        return p && typeof p.epoch === "string" && Number.isSafeInteger(p.offset) ? p : null;
      } catch {
        return null;
      }
    },
    save: (p) => storage.setItem(key, JSON.stringify(p)),
  };
}

/** Why the token provider is asked. */
export type TokenReason = "connect" | "expired" | "refused" | "refresh";

/** The current token, a fresh one, or null when there is none (signed
 * out): the client then waits for `setToken`. */
export type TokenProvider = (reason: TokenReason) => string | null | Promise<string | null>;

export type SyncState =
  /** Opening a socket. */
  | "connecting"
  /** The socket said hello: events arrive live. */
  | "live"
  /** No socket: reading the change feed every few seconds. */
  | "polling"
  /** Waiting to reconnect. */
  | "waiting"
  /** No usable token: call setToken. */
  | "signed-out"
  /** stop() was called, or the gateway refused a message (4400). */
  | "stopped";

export interface SyncStatus {
  state: SyncState;
  position: Position | null;
  /** Reconnect attempts since the last hello. */
  failures: number;
  /** The last close code, if any. */
  lastClose?: number;
}

/** The WebSocket constructor the client uses (the browser's by default). */
export type WebSocketFactory = new (url: string) => WebSocket;

export interface SyncClientOptions {
  /** ws:// or wss:// URL of /ws/tasks. */
  url: string;
  /** task-api's base URL for the polling fallback ("" = same origin). */
  apiBase: string;
  token: TokenProvider;
  onEvent: (sync: TaskSync) => void;
  /** The position is not in the history (or there was none): reload the
   * list, then follow from `position`. Events that arrive meanwhile are
   * passed to onEvent as usual; merge them by the task's sequence. */
  onReset: (position: Position) => void | Promise<void>;
  onStatus?: (status: SyncStatus) => void;
  store?: PositionStore;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Failed connection attempts in a row before polling starts. */
  failuresBeforePolling?: number;
  pollIntervalMs?: number;
  /** Application-level ping period; a socket that answers nothing within
   * it is taken as broken. */
  heartbeatMs?: number;
  /** How long a new socket may take to say hello. */
  helloTimeoutMs?: number;
  WebSocket?: WebSocketFactory;
  fetch?: typeof fetch;
  random?: () => number;
  now?: () => number;
}

const FEED_PAGE = 500;
/** The longest delay setTimeout keeps: it takes a WebIDL `long` (HTML's
 * timer steps; Node documents the same bound), so a longer one wraps and
 * fires at once. A token valid for longer than ~24.8 days needs a hop. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** WebSocket's "abnormal closure": what a broken or never-open socket reports. */
const ABNORMAL = 1006;

export class SyncClient {
  private readonly o: Required<Omit<SyncClientOptions, "onStatus" | "store">> &
    Pick<SyncClientOptions, "onStatus">;
  private readonly store: PositionStore;
  private readonly tracker: StreamTracker;
  private readonly backoff: Backoff;
  private socket: WebSocket | null = null;
  private token: string | null = null;
  /** The token the gateway refused last: never offered again. */
  private refused: string | null = null;
  private state: SyncState = "stopped";
  private lastClose: number | undefined;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastHeard = 0;
  private polling = false;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private generation = 0;

  constructor(options: SyncClientOptions) {
    this.o = {
      backoffBaseMs: 500,
      backoffMaxMs: 30_000,
      failuresBeforePolling: 2,
      pollIntervalMs: 3_000,
      heartbeatMs: 25_000,
      helloTimeoutMs: 10_000,
      WebSocket: globalThis.WebSocket,
      fetch: (...args) => globalThis.fetch(...args),
      random: Math.random,
      now: () => Date.now(),
      ...options,
    };
    this.store = options.store ?? memoryPositions();
    this.tracker = new StreamTracker(this.store.load());
    this.backoff = new Backoff(this.o.backoffBaseMs, this.o.backoffMaxMs, this.o.random);
  }

  /** The last applied position. */
  get position(): Position | null {
    return this.tracker.position;
  }

  get status(): SyncStatus {
    const s: SyncStatus = { state: this.state, position: this.position, failures: this.backoff.failures };
    if (this.lastClose !== undefined) s.lastClose = this.lastClose;
    return s;
  }

  start(): void {
    if (this.state !== "stopped" && this.state !== "signed-out") return;
    void this.connect("connect");
  }

  /** Closes the socket and stops every timer; start() begins again. */
  stop(): void {
    this.generation += 1;
    this.teardownSocket();
    this.stopPolling();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.setState("stopped");
  }

  /** A fresh token: sent on the open socket (it extends its life), or used
   * for the next connection. Restarts a signed-out client. */
  setToken(token: string): void {
    this.token = token;
    if (token !== this.refused) this.refused = null;
    if (this.state === "live") this.send({ type: "auth", token });
    else if (this.state === "signed-out") void this.connect("connect");
  }

  /** Skips the backoff wait (e.g. on the browser's `online` event). */
  reconnectNow(): void {
    if (this.state !== "waiting" && this.state !== "polling") return;
    this.backoff.reset();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    void this.connect("connect");
  }

  // --- the socket ---------------------------------------------------------

  private async connect(reason: TokenReason): Promise<void> {
    const generation = ++this.generation;
    this.teardownSocket();
    const token = await this.freshToken(reason);
    if (generation !== this.generation) return;
    if (token === null) {
      this.setState("signed-out");
      return;
    }
    this.setState(this.polling ? "polling" : "connecting");
    let socket: WebSocket;
    try {
      socket = new this.o.WebSocket(this.o.url);
    } catch {
      this.closed(ABNORMAL, false);
      return;
    }
    this.socket = socket;
    let said = false;
    const helloTimer = this.after(this.o.helloTimeoutMs, () => {
      if (this.socket === socket && !said) this.abandon(socket);
    });
    // The position goes with the auth, so the gateway replays before any
    // live event and nothing reaches this client twice.
    let asked: Position | null = null;
    socket.onopen = () => {
      asked = this.tracker.position;
      this.send(asked === null ? { type: "auth", token } : { type: "auth", token, resume: { ...asked } });
    };
    socket.onmessage = (m: MessageEvent) => {
      if (this.socket !== socket) return;
      this.lastHeard = this.o.now();
      const message = typeof m.data === "string" ? parseServerMessage(m.data) : null;
      if (message === null) return;
      if (message.type === "hello") {
        said = true;
        clearTimeout(helloTimer);
        this.timers.delete(helloTimer);
      }
      this.onMessage(message, asked);
    };
    socket.onclose = (e: CloseEvent) => {
      clearTimeout(helloTimer);
      this.timers.delete(helloTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.closed(e.code, said);
    };
    socket.onerror = () => {
      // A close event always follows an error event.
    };
  }

  private onMessage(message: ServerMessage, asked: Position | null): void {
    const now = this.o.now();
    switch (message.type) {
      case "hello": {
        this.backoff.reset();
        this.stopPolling();
        this.setState("live");
        this.startHeartbeat();
        this.scheduleRefresh();
        const action = this.tracker.hello({ epoch: message.epoch, offset: message.offset }, now, asked);
        if (action.kind === "resume") this.send({ type: "resume", ...action.from });
        if (action.kind === "reload") this.reset(action.to);
        return;
      }
      case "event":
        this.onStreamEvent(message.data, now, (from) => this.send({ type: "resume", ...from }));
        return;
      case "reset":
        this.reset({ epoch: message.epoch, offset: message.offset });
        return;
      case "pong":
        return;
    }
  }

  /** Applies one stream entry if it is the next; asks for a resume (by
   * `resume`) on a gap. Returns whether it was applied. */
  private onStreamEvent(sync: TaskSync, now: number, resume: (from: Position) => void): boolean {
    const action = this.tracker.event({ epoch: sync.epoch, offset: sync.offset }, now);
    if (action.kind === "resume") resume(action.from);
    if (action.kind !== "apply") return false;
    this.o.onEvent(sync);
    this.save();
    return true;
  }

  /** Called before the new position is saved, so a store that keeps the
   * list beside the position can see the reload has begun. */
  private reset(to: Position): void {
    this.tracker.reset(to);
    let reloading: void | Promise<void>;
    try {
      reloading = this.o.onReset({ ...to });
    } catch (error) {
      reloading = Promise.reject(error);
    }
    this.save();
    Promise.resolve(reloading).catch((error: unknown) => console.error("sync: reloading after a reset failed", error));
  }

  private closed(code: number, saidHello: boolean): void {
    this.lastClose = code;
    this.stopHeartbeat();
    this.tracker.disconnected();
    const next = afterClose(code);
    if (next === "stop") {
      console.error(`sync: the gateway refused a message (${code}); stopped`);
      this.stop();
      return;
    }
    if (next === "reauthenticate") {
      this.refused = this.token;
      void this.connect(code === 4402 ? "expired" : "refused");
      return;
    }
    const delay = this.backoff.next();
    if (!saidHello && this.backoff.failures >= this.o.failuresBeforePolling) this.startPolling();
    this.setState(this.polling ? "polling" : "waiting");
    this.after(delay, () => void this.connect("connect"));
  }

  /** Gives up on a socket that went silent: no close frame will come. */
  private abandon(socket: WebSocket): void {
    socket.onclose = null;
    socket.onmessage = null;
    socket.close();
    this.socket = null;
    this.closed(ABNORMAL, this.state === "live");
  }

  private teardownSocket(): void {
    this.stopHeartbeat();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onopen = null;
      socket.close();
    }
  }

  private send(message: ClientMessage): void {
    if (this.socket?.readyState === 1) this.socket.send(JSON.stringify(message));
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.lastHeard = this.o.now();
    const socket = this.socket;
    this.heartbeat = setInterval(() => {
      if (socket === null || this.socket !== socket) return;
      // Two periods without a word (a pong answers every ping): broken.
      if (this.o.now() - this.lastHeard > 2 * this.o.heartbeatMs) this.abandon(socket);
      else this.send({ type: "ping" });
    }, this.o.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Shortly before the token expires, asks for a fresh one and sends it,
   * so the gateway does not close with 4402. */
  private scheduleRefresh(): void {
    const exp = this.token === null ? null : tokenExpiry(this.token);
    if (exp === null) return;
    const generation = this.generation;
    const inMs = Math.max(0, exp * 1000 - this.o.now() - 30_000);
    if (inMs > MAX_TIMER_MS) {
      // Not yet: look again after the longest wait a timer allows.
      this.after(MAX_TIMER_MS, () => {
        if (generation === this.generation) this.scheduleRefresh();
      });
      return;
    }
    this.after(inMs, async () => {
      if (generation !== this.generation) return;
      const fresh = await this.o.token("refresh");
      if (fresh !== null && fresh !== this.token && generation === this.generation) this.setToken(fresh);
    });
  }

  private async freshToken(reason: TokenReason): Promise<string | null> {
    try {
      const token = await this.o.token(reason);
      // The same refused token again would loop: wait for setToken.
      if (token === null || token === this.refused) return null;
      this.token = token;
      return token;
    } catch (error) {
      console.error("sync: the token provider failed", error);
      return null;
    }
  }

  // --- the polling fallback ------------------------------------------------

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  private async poll(): Promise<void> {
    this.pollTimer = null;
    if (!this.polling) return;
    let again = this.o.pollIntervalMs;
    try {
      const full = await this.pollOnce();
      if (full) again = 0;
    } catch (error) {
      if (error instanceof Unauthorized) {
        this.refused = this.token;
        this.stopPolling();
        void this.connect("expired");
        return;
      }
      console.warn("sync: polling the change feed failed", error);
    }
    if (this.polling) this.pollTimer = setTimeout(() => void this.poll(), again);
  }

  /** One read of the change feed; true when the page was full. */
  private async pollOnce(): Promise<boolean> {
    const position = this.tracker.position;
    if (position === null) {
      const head = await this.feed("");
      if ("reset" in head || !this.polling) return false;
      this.reset({ epoch: head.epoch, offset: head.next_offset });
      return false;
    }
    const query = `?epoch=${encodeURIComponent(position.epoch)}&after=${position.offset}&limit=${FEED_PAGE}`;
    const page = await this.feed(query);
    if (!this.polling) return false;
    if ("reset" in page) {
      const head = await this.feed("");
      if (!("reset" in head) && this.polling) this.reset({ epoch: head.epoch, offset: head.next_offset });
      return false;
    }
    // The feed answers without a hole from `after`, so a gap here means
    // the position moved meanwhile (a socket came back): the next read
    // starts from the new one.
    for (const { data } of page.events) this.onStreamEvent(data, this.o.now(), () => undefined);
    return page.events.length >= FEED_PAGE;
  }

  private async feed(query: string): Promise<FeedPage> {
    const response = await this.o.fetch(`${this.o.apiBase}/api/changes${query}`, {
      headers: { authorization: `Bearer ${this.token ?? ""}`, accept: "application/json" },
    });
    if (response.status === 401) throw new Unauthorized();
    if (!response.ok) throw new Error(`GET /api/changes answered ${response.status}`);
    return (await response.json()) as FeedPage;
  }

  // --- helpers -------------------------------------------------------------

  private save(): void {
    const position = this.tracker.position;
    if (position !== null) this.store.save(position);
  }

  private after(ms: number, f: () => void): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      f();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  private setState(state: SyncState): void {
    this.state = state;
    this.o.onStatus?.(this.status);
  }
}

class Unauthorized extends Error {
  constructor() {
    super("the change feed refused the token");
  }
}
