// Queueing the workflow (the Queue button, Ctrl+Enter): × N runs, or one run per cell when the
// workflow has a sweep (POST /api/runs answers {id, count, sweep, runs}). Validation problems
// (400, or a sweep's 422 naming the cell and its values) go to the Problems tab.

import { api, ApiError } from "./api.js";
import { clearProblems, showProblems } from "./problems.js";
import { cellProblems } from "./sweeps.js";
import { toast } from "./ui.js";
import { applySeedControls } from "./widgets.js";

const $ = (sel) => document.querySelector(sel);

/** Shows why the server refused a run; true when it was a validation answer. */
function showRefusal(app, err) {
  if (err instanceof ApiError && [400, 422].includes(err.status) && Array.isArray(err.body?.problems)) {
    showProblems(app, cellProblems(err.body.problems));
    toast(`Cannot queue: ${err.body.problems.length} problem(s) — see the Problems tab`, "error");
  } else if (err instanceof ApiError && err.status === 400 && /^sweeps?\b/i.test(err.message)) {
    showProblems(app, [{ node: null, input: null, code: "sweep", message: err.message }]);
    toast(`Cannot queue: ${err.message}`, "error");
  } else {
    toast(`Queue failed: ${err.message}`, "error");
  }
}

/** Returns queue({front}): queues the workflow × the batch count; `front` goes before the waiting runs. */
export function makeQueue(app) {
  let queueing = false;
  return async function queue({ front = false } = {}) {
    if (queueing) return;
    queueing = true;
    const btn = $("#btn-queue");
    btn.disabled = true;
    try {
      app.history.record();
      clearProblems(app);
      const count = Math.max(1, Math.min(100, Number($("#batch").value) || 1));
      for (let i = 0; i < count; i += 1) {
        const wf = app.exportWorkflow(); // the whole workflow, also while inside a subgraph
        let res;
        try {
          res = await api("/api/runs", { method: "POST", json: front ? { ...wf, front: true } : wf });
        } catch (err) {
          showRefusal(app, err);
          return;
        }
        const ids = Array.isArray(res.runs) && res.runs.length ? res.runs : [res.id];
        ids.forEach((id, k) => {
          app.tabs?.claimRun(id); // its results belong to this tab
          app.runs.upsert({ id, status: app.runs.runs.get(id)?.status ?? "queued",
            position: res.position == null ? null : res.position + k, title: app.meta.title,
            created: Date.now() / 1000, ...(res.sweep ? { sweep: { id: res.sweep, cell: k } } : {}) });
        });
        if (res.sweep) {
          app.grid?.queued(res.sweep, { title: app.meta.title, count: res.count ?? ids.length });
          toast(`Sweep queued: ${res.count ?? ids.length} runs`, "ok", 2500);
        }
        for (const node of app.graph.nodes) applySeedControls(node);
      }
      app.canvas.setDirty(true, true);
      app.history.record();
    } finally {
      queueing = false;
      btn.disabled = false;
    }
  };
}
