// HTTP and WebSocket access to the Loom server. Nothing here knows about the canvas.

/** An HTTP error with the server's JSON body (when it sent one). */
export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

const token = new URLSearchParams(location.search).get("token");

function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

function messageOf(body, status, statusText) {
  if (body && typeof body === "object") {
    if (typeof body.message === "string") return body.message;
    if (typeof body.error === "string") return body.error;
    if (body.error && typeof body.error.message === "string") return body.error.message;
    if (Array.isArray(body.problems) && body.problems.length) {
      return body.problems.map((p) => p.message).join("; ");
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return `${status} ${statusText}`;
}

/** Calls the API; returns parsed JSON (or null), throws ApiError on HTTP errors. */
export async function api(path, { method = "GET", json, body, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, null, `cannot reach the server (${err.message})`);
  }
  const type = res.headers.get("Content-Type") || "";
  let data = null;
  if (type.includes("json")) {
    data = await res.json().catch(() => null);
  } else {
    const text = await res.text();
    data = text || null;
  }
  if (!res.ok) throw new ApiError(res.status, data, messageOf(data, res.status, res.statusText));
  return data;
}

/** URL of a file the server shows: kind is output, upload or preview. */
export function fileUrl(kind, path) {
  const clean = String(path).split("/").map(encodeURIComponent).join("/");
  return withToken(`/api/files/${encodeURIComponent(kind)}/${clean}`);
}

/** Uploads an image file; resolves to the name the server stored it under. */
export async function uploadImage(file) {
  const form = new FormData();
  form.append("image", file, file.name);
  const res = await api("/api/uploads", { method: "POST", body: form });
  return res.name;
}

/** Lists runs from GET /api/runs whatever its envelope ({runs} or a bare list). */
export async function listRuns(limit = 50) {
  const res = await api(`/api/runs?limit=${limit}`);
  if (Array.isArray(res)) return res;
  return res?.runs ?? res?.items ?? [];
}

/** Lists workflows from GET /api/workflows as [{name, title, source}]. */
export async function listWorkflows() {
  const res = await api("/api/workflows");
  const items = Array.isArray(res) ? res : res?.workflows ?? [];
  return items.map((w) => (typeof w === "string" ? { name: w, title: w } : w));
}

/**
 * The event WebSocket: reconnects by itself with backoff and reports its state.
 * onEvent receives parsed JSON events; binary frames arrive as {type: "binary", blob}.
 */
export class EventSocket {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.ws = null;
    this.delay = 500;
    this.closed = false;
    this.timer = null;
  }

  connect() {
    if (this.closed) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(withToken(`${proto}//${location.host}/api/events`));
    ws.binaryType = "blob";
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.delay = 500;
      this.onState(true);
    });
    ws.addEventListener("message", (msg) => {
      if (typeof msg.data !== "string") {
        this.onEvent({ type: "binary", blob: msg.data });
        return;
      }
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      // One frame holds one event, or the events of one server event-loop tick (an array).
      for (const event of Array.isArray(data) ? data : [data]) this.onEvent(event);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.onState(false);
      this.ws = null;
      if (this.closed) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    });
    ws.addEventListener("error", () => {
      // the close handler reconnects; nothing to log (the connection dot shows it)
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}
