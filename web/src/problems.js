// Validation problems: shown on their nodes (red, with the message) and in the Problems tab.

import { showTab } from "./ui.js";

const $ = (sel) => document.querySelector(sel);

/** An empty Problems tab does not stay in front: the Queue tab takes its place. */
function leaveEmptyProblems() {
  if ($("#tab-problems").classList.contains("active")) showTab("queue");
}

/** Forgets every problem (on the nodes and in the tab). */
export function clearProblems(app) {
  for (const node of app.graph.nodes) {
    if (!node.loom || node.loom.unknown) continue;
    node.loom.problems = [];
    if (!node.loom.error) node.has_errors = false;
  }
  $("#problem-list").replaceChildren();
  $("#problem-count").hidden = true;
  leaveEmptyProblems();
}

/** Shows the server's validation problems on their nodes and in the Problems tab. */
export function showProblems(app, problems) {
  clearProblems(app);
  const list = $("#problem-list");
  for (const p of problems) {
    const node = p.node == null ? null : app.nodeById(p.node);
    if (node?.loom) {
      node.loom.problems.push(p);
      node.has_errors = true;
    }
    const li = document.createElement("li");
    li.dataset.node = p.node ?? "";
    li.dataset.input = p.input ?? "";
    const where = document.createElement("div");
    where.className = "where";
    where.textContent = p.node ? `${node?.title ?? p.node}${p.input ? ` › ${p.input}` : ""}` : "Workflow";
    const msg = document.createElement("div");
    msg.textContent = p.message;
    const code = document.createElement("div");
    code.className = "code";
    code.textContent = p.node ? `${p.node}${p.input ? `.${p.input}` : ""} · ${p.code}` : p.code;
    li.append(where, msg, code);
    li.addEventListener("click", () => {
      if (!node) return;
      app.canvas.centerOnNode(node);
      app.canvas.selectNode(node);
    });
    list.append(li);
  }
  const count = $("#problem-count");
  count.textContent = String(problems.length);
  count.hidden = !problems.length;
  showTab("problems");
  app.canvas.setDirty(true, true);
}

/** Forgets problems on one input once the user edits it. */
export function clearInputProblems(node, input) {
  if (!node.loom?.problems.length) return;
  node.loom.problems = node.loom.problems.filter((p) => p.input && p.input !== input);
  if (!node.loom.problems.length && !node.loom.error && !node.loom.unknown) node.has_errors = false;
  const left = [...document.querySelectorAll("#problem-list li")].filter((li) => {
    const gone = li.dataset.node === String(node.id) && (li.dataset.input === input || !li.dataset.input);
    if (gone) li.remove();
    return !gone;
  });
  $("#problem-count").textContent = String(left.length);
  $("#problem-count").hidden = !left.length;
  if (!left.length) leaveEmptyProblems();
}
