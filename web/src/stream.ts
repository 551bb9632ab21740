// The client's side of the ordering contract, as pure logic: where the
// client is in its stream, what to do with each hello and event, and the
// reconnect backoff. No timers, sockets or storage here (sync-client.ts
// does those), so the unit tests drive it directly.

import type { Position } from "./protocol.js";

/** What to do after `hello`. */
export type HelloAction =
  /** Nothing missed: follow the live events. */
  | { kind: "follow" }
  /** Behind in the same epoch: ask for the events after `from`. */
  | { kind: "resume"; from: Position }
  /** No position, another epoch, or ahead of the server (its history was
   * rebuilt): reload the task list and follow from `to`. */
  | { kind: "reload"; to: Position }
  /** The position went with the auth: the gateway's replay (or its
   * reset) comes next, before any live event. */
  | { kind: "replaying" };

/** What to do with one event. */
export type EventAction =
  /** The next offset: apply it (the position has moved to it). */
  | { kind: "apply" }
  /** At or below the position: already applied. */
  | { kind: "duplicate" }
  /** Something is missing: send a resume from `from`. */
  | { kind: "resume"; from: Position }
  /** Something is missing and a resume is already on its way: drop the
   * event, the replay brings it again in order. */
  | { kind: "wait" };

/**
 * The stream position and the resume in flight. `resumeTimeoutMs` bounds
 * how long a sent resume keeps later gaps quiet: if no event follows in
 * that time, the next gap asks again.
 */
export class StreamTracker {
  position: Position | null;
  private resumeSentAt: number | null = null;

  constructor(
    position: Position | null,
    private readonly resumeTimeoutMs = 10_000,
  ) {
    this.position = position;
  }

  /** `asked`: the position sent with the auth, if any. */
  hello(server: Position, now: number, asked: Position | null = null): HelloAction {
    this.resumeSentAt = null;
    const mine = this.position;
    if (mine !== null && asked !== null) {
      if (mine.epoch === server.epoch && mine.offset === server.offset) return { kind: "follow" };
      // Behind: the replay follows. Another epoch or ahead: a reset
      // follows. Either way nothing is asked again, and a stray gap waits.
      this.resumeSentAt = now;
      return { kind: "replaying" };
    }
    if (mine === null || mine.epoch !== server.epoch || mine.offset > server.offset) {
      this.position = { epoch: server.epoch, offset: server.offset };
      return { kind: "reload", to: { ...this.position } };
    }
    if (mine.offset === server.offset) return { kind: "follow" };
    this.resumeSentAt = now;
    return { kind: "resume", from: { ...mine } };
  }

  event(at: Position, now: number): EventAction {
    const mine = this.position;
    if (mine === null) {
      // No hello yet (polling before the first head): nothing to follow.
      return { kind: "wait" };
    }
    if (at.epoch === mine.epoch && at.offset <= mine.offset) return { kind: "duplicate" };
    if (at.epoch === mine.epoch && at.offset === mine.offset + 1) {
      this.position = { epoch: mine.epoch, offset: at.offset };
      this.resumeSentAt = null;
      return { kind: "apply" };
    }
    // A hole, or another epoch (the gateway answers that resume with a
    // reset).
    if (this.resumeSentAt !== null && now - this.resumeSentAt < this.resumeTimeoutMs) {
      return { kind: "wait" };
    }
    this.resumeSentAt = now;
    return { kind: "resume", from: { ...mine } };
  }

  /** `reset` from the gateway or the feed: the list is reloaded and the
   * stream followed from `to`. */
  reset(to: Position): void {
    this.position = { epoch: to.epoch, offset: to.offset };
    this.resumeSentAt = null;
  }

  /** A new connection: whatever resume was in flight died with the old one. */
  disconnected(): void {
    this.resumeSentAt = null;
  }
}

/** Exponential backoff with full jitter (a delay drawn uniformly from
 * [0, min(max, base * 2^attempt)]), so clients cut off together do not
 * come back together. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 500,
    private readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.floor(this.random() * ceiling);
  }

  /** Attempts since the last success. */
  get failures(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
