// The /ws/tasks protocol and the change feed, as the client sees them.
// Schemas: shared/contracts/schemas/sync-client-message.v1.json,
// sync-server-message.v1.json, task-sync.v1.json, task-snapshot.json.

/** A task as task-api returns it and as events carry it. */
export interface Task {
  id: string;
  user_id: string;
  title: string;
  description: string;
  status: "pending" | "completed";
  priority: "high" | "medium" | "low";
  tags: string[];
  due_at: string | null;
  time_zone: string;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  /** Incremented by every change of the task (its ETag). */
  sequence: number;
  recurrence?: unknown;
  series_id?: string;
  occurrence?: number;
}

/** One entry of a user's stream (`com.todo.task.sync` data). */
export interface TaskSync {
  task_id: string;
  user_id: string;
  sequence: number;
  epoch: string;
  offset: number;
  op: "created" | "updated" | "completed" | "deleted";
  /** The task after the change (before it, for a delete), or null. */
  task: Task | null;
  changed: string[];
}

/** A position in the user's stream: the last offset applied. */
export interface Position {
  epoch: string;
  offset: number;
}

export type ServerMessage =
  | { type: "hello"; epoch: string; offset: number }
  | { type: "event"; epoch: string; offset: number; data: TaskSync }
  | { type: "reset"; epoch: string; offset: number }
  | { type: "pong" };

export type ClientMessage =
  /** `resume` on the first auth only: the gateway replays from it right
   * after hello, before any live event (or answers reset). */
  | { type: "auth"; token: string; resume?: Position }
  | { type: "resume"; epoch: string; offset: number }
  | { type: "ping" };

/** The gateway's close codes (README, "Real-time sync"). */
export const CloseCode = {
  GoingAway: 1001,
  TooBig: 1009,
  TryAgainLater: 1013,
  BadMessage: 4400,
  Unauthenticated: 4401,
  TokenExpired: 4402,
  Idle: 4408,
  TooSlow: 4429,
} as const;

/** What a client does after a close. */
export type AfterClose =
  /** Reconnect (after a backoff) and resume from the stored position. */
  | "resume"
  /** Get a fresh token, then reconnect at once and resume. */
  | "reauthenticate"
  /** A client bug (4400, 1009): reconnecting would repeat it. */
  | "stop";

export function afterClose(code: number): AfterClose {
  switch (code) {
    case CloseCode.Unauthenticated:
    case CloseCode.TokenExpired:
      return "reauthenticate";
    case CloseCode.BadMessage:
    case CloseCode.TooBig:
      return "stop";
    default:
      // 1001, 1013, 4408, 4429, and 1006 (the connection broke, or never
      // opened): every one resumes.
      return "resume";
  }
}

/** Parses a server frame; anything unexpected is null. */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const m = value as Record<string, unknown>;
  switch (m["type"]) {
    case "pong":
      return { type: "pong" };
    case "hello":
    case "reset":
      return isPosition(m) ? { type: m["type"], epoch: m.epoch, offset: m.offset } : null;
    case "event":
      return isPosition(m) && typeof m["data"] === "object" && m["data"] !== null
        ? { type: "event", epoch: m.epoch, offset: m.offset, data: m["data"] as TaskSync }
        : null;
    default:
      return null;
  }
}

function isPosition(m: Record<string, unknown>): m is Record<string, unknown> & Position {
  return (
    typeof m["epoch"] === "string" &&
    m["epoch"] !== "" &&
    Number.isSafeInteger(m["offset"]) &&
    (m["offset"] as number) >= 0
  );
}

/** `GET /api/changes`: events after a position, or a reset. */
export type FeedPage =
  | { reset: true; epoch: string }
  | { epoch: string; events: { data: TaskSync }[]; next_offset: number };

/** The `exp` claim of a JWT (seconds), without verifying it: only to know
 * when to ask for a fresh one. Null when absent or unreadable. */
export function tokenExpiry(token: string): number | null {
  const claims = tokenClaims(token);
  const exp = claims?.["exp"];
  return typeof exp === "number" ? exp : null;
}

/** A JWT's claims, decoded but not verified (the server verifies). */
export function tokenClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (part === undefined) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const json = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    const claims: unknown = JSON.parse(json);
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
