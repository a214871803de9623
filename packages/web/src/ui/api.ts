/** Fetches from the server's JSON API; errors carry the server's message. */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin', ...(signal ? { signal } : {}) });
  const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
  if (!res.ok) throw new ApiError(res.status, body.error?.message ?? `HTTP ${res.status}`);
  return body as T;
}

export const enc = encodeURIComponent;

/** Runs `task` at most once per `ms`, and once more after the last call in a burst. */
export function throttle(ms: number, task: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  let last = 0;
  const run = async (): Promise<void> => {
    running = true;
    try {
      const wait = last + ms - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      last = Date.now();
      again = false;
      await task();
    } finally {
      running = false;
      if (again) void run();
    }
  };
  return () => {
    if (running) again = true;
    else void run();
  };
}

export interface SessionRow {
  session_id: string;
  agent_id: string;
  first_ts: string;
  last_ts: string;
  event_count: number;
  status: string;
  cost_usd: number;
  input_tokens: number;
  output_tokens: number;
  error_count: number;
  tool_calls: number;
  current_step: string;
  partial: boolean;
}

export interface AgentEvent {
  event_id: string;
  session_id: string;
  agent_id: string;
  emitter_id: string;
  seq: number;
  timestamp: string;
  event_type: string;
  status: string;
  payload: Record<string, unknown>;
  context: { parent_event_id?: string; reasoning?: unknown; confidence?: unknown; [k: string]: unknown };
  offload?: { fields: string[]; failed?: boolean };
}

export interface SessionDoc {
  session_id: string;
  source: string;
  partition: number | null;
  warnings: string[];
  cursor: unknown;
  events: AgentEvent[];
}
