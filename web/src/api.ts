// task-api's REST calls the page makes (openapi.json beside task-api).

import type { Task } from "./protocol.js";

/** A failed call: the status and the problem+json detail, if any. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(detail);
  }
}

export class TaskApi {
  constructor(
    private readonly base: string,
    private readonly token: () => string | null,
  ) {}

  /** Every task of the user, all pages. */
  async list(): Promise<Task[]> {
    const tasks: Task[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const page = (await this.call("GET", `/api/tasks?limit=200${query}`)) as {
        items: Task[];
        next_cursor: string | null;
      };
      tasks.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    return tasks;
  }

  /** Creates a task; the key makes a retried request create it once. */
  create(title: string, idempotencyKey: string): Promise<Task> {
    return this.call("POST", "/api/tasks", { title }, { "idempotency-key": idempotencyKey }) as Promise<Task>;
  }

  setDone(id: string, done: boolean): Promise<Task> {
    return this.call("POST", `/api/tasks/${encodeURIComponent(id)}/${done ? "complete" : "reopen"}`) as Promise<Task>;
  }

  async remove(id: string): Promise<void> {
    await this.call("DELETE", `/api/tasks/${encodeURIComponent(id)}`);
  }

  private async call(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json", ...extra };
    const token = this.token();
    if (token !== null) headers["authorization"] = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, init);
    } catch (error) {
      throw new ApiError(0, `task-api unreachable (${String(error)})`);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    if (!response.ok) throw new ApiError(response.status, problemDetail(text) ?? `${method} ${path}: ${response.status}`);
    return text === "" ? null : (JSON.parse(text) as unknown);
  }
}

function problemDetail(text: string): string | null {
  try {
    const problem = JSON.parse(text) as { detail?: unknown; title?: unknown };
    const detail = problem.detail ?? problem.title;
    return typeof detail === "string" ? detail : null;
  } catch {
    return null;
  }
}
