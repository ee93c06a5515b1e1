// Undo/redo by workflow snapshots, and the local-storage copy that survives a reload.

const STORAGE_KEY = "loom.workflow";
const VIEW_KEY = "loom.view";
const LIMIT = 100;

/** Snapshots of the workflow JSON; `snapshot()` returns the current JSON string. */
export class History {
  constructor(snapshot, restore, onChange) {
    this.snapshot = snapshot;
    this.restore = restore;
    this.onChange = onChange;
    this.stack = [];
    this.index = -1;
    this.timer = null;
    this.paused = false;
    this.savedJson = null;
  }

  /** Starts over from the current state (after loading a workflow). */
  reset(markSaved = true) {
    clearTimeout(this.timer);
    const json = this.snapshot();
    this.stack = [json];
    this.index = 0;
    if (markSaved) this.savedJson = json;
    store(json);
    this.onChange();
  }

  /** Records the current state if it changed (debounced). */
  schedule(delay = 250) {
    if (this.paused) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.record(), delay);
  }

  /** Records the current state now if it differs from the last snapshot. */
  record() {
    clearTimeout(this.timer);
    if (this.paused) return false;
    const json = this.snapshot();
    if (json === this.stack[this.index]) return false;
    this.stack = this.stack.slice(0, this.index + 1);
    this.stack.push(json);
    if (this.stack.length > LIMIT) this.stack.shift();
    this.index = this.stack.length - 1;
    store(json);
    this.onChange();
    return true;
  }

  /** Folds a change the user did not make (a node grown to show its images) into the current step. */
  absorb() {
    if (this.paused || this.index < 0) return;
    const json = this.snapshot();
    if (json === this.stack[this.index]) return;
    const wasSaved = !this.dirty;
    this.stack[this.index] = json;
    if (wasSaved) this.savedJson = json;
    store(json);
    this.onChange();
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.stack.length - 1;
  }

  get dirty() {
    return this.stack[this.index] !== this.savedJson;
  }

  markSaved() {
    this.savedJson = this.stack[this.index];
    this.onChange();
  }

  undo() {
    this.record();
    if (!this.canUndo) return false;
    this.index -= 1;
    this.apply();
    return true;
  }

  redo() {
    if (!this.canRedo) return false;
    this.index += 1;
    this.apply();
    return true;
  }

  apply() {
    this.paused = true;
    try {
      this.restore(JSON.parse(this.stack[this.index]));
    } finally {
      this.paused = false;
    }
    store(this.stack[this.index]);
    this.onChange();
  }
}

function store(json) {
  try {
    localStorage.setItem(STORAGE_KEY, json);
  } catch {
    // storage full or disabled: the canvas keeps working without it
  }
}

/** The workflow kept in local storage, or null. */
export function storedWorkflow() {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** Saves the canvas view (offset and zoom). */
export function storeView(ds) {
  try {
    localStorage.setItem(VIEW_KEY, JSON.stringify({ offset: [...ds.offset], scale: ds.scale }));
  } catch {
    // ignore
  }
}

/** The stored view, or null. */
export function storedView() {
  try {
    const v = JSON.parse(localStorage.getItem(VIEW_KEY) ?? "null");
    return v && Array.isArray(v.offset) && typeof v.scale === "number" ? v : null;
  } catch {
    return null;
  }
}
