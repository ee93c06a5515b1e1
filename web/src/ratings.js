// Human ratings in the gallery and the sweep grid. Rating mode: click an image to select it,
// keys 1–5 rate it on the current criterion (realism / alignment / aesthetic; Tab or R cycles),
// arrow keys move between images, the rating shows on the thumbnail. A/B mode shows two images
// blind in random order; ← / → (or A / B) choose, then the next pair follows. The rater's name
// is asked once (kept in local storage). Everything goes to POST /api/ratings and is read
// back from GET /api/ratings.

import { api } from "./api.js";
import { SHORTCUTS, isTyping } from "./shortcuts.js";
import { floatPanel, toast } from "./ui.js";

export const CRITERIA = [["realism", "Realism"], ["alignment", "Prompt alignment"], ["aesthetic", "Aesthetic"]];
const RATER_KEY = "loom.rater";
const CRITERION_KEY = "loom.rating.criterion";
const $ = (sel) => document.querySelector(sel);

SHORTCUTS.push(["Ratings (gallery and sweep grid, in rating mode)", [
  ["1 … 5", "rate the selected image on the current criterion"],
  ["← → ↑ ↓", "select another image"],
  ["Tab / R (Shift+Tab back)", "next criterion: realism, prompt alignment, aesthetic"],
  ["A/B: ← or A, → or B", "choose the better image of the pair (S skips)"],
  ["Esc", "leave rating mode / close A/B"],
]]);

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

/** The image path a thumbnail shows (from its data-path, else from its /api/files/<kind>/ URL). */
function pathOf(fig) {
  if (fig.dataset.path) return fig.dataset.path;
  const src = fig.querySelector("img")?.getAttribute("src") ?? "";
  const m = /\/api\/files\/[^/]+\/([^?]+)/.exec(src);
  return m ? m[1].split("/").map(decodeURIComponent).join("/") : null;
}

class Ratings {
  constructor(app) {
    this.app = app;
    this.criterion = localStorage.getItem(CRITERION_KEY) ?? "realism";
    if (!CRITERIA.some(([c]) => c === this.criterion)) this.criterion = "realism";
    this.surfaces = new Map(); // root element → {root, selector, rating, selected, tools}
    this.details = new Map(); // run id → promise of its detail
    this.scores = new Map(); // "run/node/index/criterion" → score (this rater's latest)
    this.loaded = null;
    this.ab = null;
    document.addEventListener("keydown", (e) => this.onKey(e), true);
  }

  get rater() {
    return localStorage.getItem(RATER_KEY) ?? "";
  }

  /** The rater's name; asked once in a small dialog, then kept. */
  askRater() {
    if (this.rater) return Promise.resolve(this.rater);
    return new Promise((resolve) => {
      $("#rater-dialog")?.remove();
      const panel = floatPanel("rater-dialog", "Your name as a rater", "float-panel rater-dialog");
      const input = el("input", { type: "text", placeholder: "e.g. ann", maxLength: 40, spellcheck: false });
      const err = el("p", { className: "sweep-error" });
      const ok = el("button", { className: "primary", textContent: "OK" });
      const done = () => {
        const name = input.value.trim();
        if (!/^[\p{L}\p{N}_][\p{L}\p{N}_ .@'+-]{0,39}$/u.test(name)) {
          err.textContent = "1–40 letters, digits, spaces or . @ ' + - _, starting with a letter or digit";
          return;
        }
        localStorage.setItem(RATER_KEY, name);
        panel.remove();
        this.loaded = null;
        this.loadScores().then(() => this.refreshBadges());
        resolve(name);
      };
      ok.addEventListener("click", done);
      input.addEventListener("keydown", (e) => {
        e.stopPropagation();
        if (e.key === "Enter") done();
      });
      panel.append(el("p", { className: "note", textContent: "Ratings are stored with this name (kept in this browser)." }), input, ok, err);
      panel.querySelector(".close").addEventListener("click", () => {
        panel.remove();
        resolve(null); // no name: nothing is rated
      });
      document.body.append(panel);
      panel.hidden = false;
      input.focus();
    });
  }

  /** This rater's scores from GET /api/ratings. */
  loadScores() {
    if (!this.rater) return Promise.resolve();
    this.loaded ??= api(`/api/ratings?rater=${encodeURIComponent(this.rater)}`).then((res) => {
      for (const r of res?.ratings ?? []) this.scores.set(`${r.run}/${r.node}/${r.image_index}/${r.criterion}`, r.score);
    }).catch((err) => toast(`Could not read the ratings: ${err.message}`, "warn"));
    return this.loaded;
  }

  /** {run, node, image_index} of a thumbnail (looked up in its run's result), or null. */
  async refOf(fig) {
    const run = fig.dataset.run;
    const path = pathOf(fig);
    if (!run || !path) return null;
    if (!this.details.has(run)) {
      const p = api(`/api/runs/${encodeURIComponent(run)}`);
      p.catch(() => this.details.delete(run));
      this.details.set(run, p);
    }
    const detail = await this.details.get(run).catch(() => null);
    for (const [node, ui] of Object.entries(detail?.result?.ui ?? {})) {
      const i = (Array.isArray(ui?.images) ? ui.images : []).findIndex((im) => im?.path === path);
      if (i >= 0) return { run, node, image_index: i };
    }
    return null;
  }

  // --- surfaces: the gallery and the grid ------------------------------------------------------
  /** Makes the thumbnails under `root` ratable; the controls go into `host`. */
  attach(root, selector, host, info = {}) {
    const s = this.surfaces.get(root) ?? { root, selector, rating: false, selected: 0, info };
    Object.assign(s, { selector, info });
    if (!this.surfaces.has(root)) {
      this.surfaces.set(root, s);
      root.addEventListener("click", (e) => this.onClick(s, e), true);
    }
    s.tools?.remove();
    s.tools = this.toolbar(s);
    host.append(s.tools);
    this.paint(s);
    return s;
  }

  detach(root) {
    const s = this.surfaces.get(root);
    if (s) s.rating = false;
    if (this.ab?.surface === s) this.closeAb();
  }

  items(s) {
    return [...s.root.querySelectorAll(s.selector)];
  }

  toolbar(s) {
    const rate = el("button", { className: "rate-toggle", textContent: s.rating ? "Rating ✓" : "Rate",
      title: "Rating mode: select an image, keys 1–5 rate it, arrows move, Tab/R changes the criterion" });
    rate.addEventListener("click", () => this.setRating(s, !s.rating));
    const crit = el("select", { className: "rate-criterion", title: "What you rate (Tab or R cycles)" });
    for (const [v, t] of CRITERIA) crit.add(new Option(t, v));
    crit.value = this.criterion;
    crit.addEventListener("change", () => this.setCriterion(crit.value));
    const ab = el("button", { className: "rate-ab", textContent: "A/B", title: "Choose the better of two images, shown blind in random order" });
    ab.addEventListener("click", () => this.openAb(s));
    return el("span", { className: "rating-tools" }, rate, crit, ab);
  }

  async setRating(s, on) {
    if (on && !(await this.askRater())) return;
    s.rating = on;
    s.root.classList.toggle("rating-mode", on);
    if (s.tools) s.tools.querySelector(".rate-toggle").textContent = on ? "Rating ✓" : "Rate";
    if (on) await this.loadScores();
    this.paint(s);
  }

  setCriterion(c) {
    this.criterion = c;
    localStorage.setItem(CRITERION_KEY, c);
    for (const s of this.surfaces.values()) {
      const sel = s.tools?.querySelector(".rate-criterion");
      if (sel) sel.value = c;
    }
    this.refreshBadges();
    if (this.ab) this.ab.label.textContent = this.abQuestion();
  }

  cycleCriterion(step) {
    const i = CRITERIA.findIndex(([c]) => c === this.criterion);
    this.setCriterion(CRITERIA[(i + step + CRITERIA.length) % CRITERIA.length][0]);
  }

  refreshBadges() {
    for (const s of this.surfaces.values()) this.paint(s);
  }

  /** Selection outline and each thumbnail's rating badge (current criterion). */
  async paint(s) {
    const items = this.items(s);
    s.root.classList.toggle("rating-mode", s.rating);
    s.selected = Math.max(0, Math.min(s.selected, items.length - 1));
    items.forEach((fig, i) => fig.classList.toggle("rate-selected", s.rating && i === s.selected));
    if (!s.rating && !this.scores.size) return;
    await this.loadScores();
    for (const fig of items) {
      const ref = await this.refOf(fig);
      let badge = fig.querySelector(".rating-badge");
      const score = ref ? this.scores.get(`${ref.run}/${ref.node}/${ref.image_index}/${this.criterion}`) : undefined;
      if (score === undefined) {
        badge?.remove();
        continue;
      }
      badge ??= fig.appendChild(el("span", { className: "rating-badge" }));
      badge.textContent = `★${score}`;
      badge.title = `${this.criterion}: ${score}/5 (${this.rater})`;
      badge.dataset.score = String(score);
    }
  }

  onClick(s, e) {
    if (!s.rating) return;
    const fig = e.target.closest?.(s.selector);
    if (!fig) return;
    e.preventDefault();
    e.stopPropagation(); // no lightbox while rating
    s.selected = this.items(s).indexOf(fig);
    this.paint(s);
  }

  /** The surface the keys go to: the open grid first, then a visible gallery. */
  active() {
    const shown = [...this.surfaces.values()].filter((s) => s.rating && s.root.offsetParent !== null && !s.root.hidden);
    return shown.find((s) => s.root.id === "sweep-studio") ?? shown[0] ?? null;
  }

  async rate(s, score) {
    const fig = this.items(s)[s.selected];
    const ref = fig && await this.refOf(fig);
    if (!ref) {
      toast("This image cannot be rated (its run is not in the history)", "warn");
      return;
    }
    const rater = await this.askRater();
    if (!rater) return;
    try {
      await api("/api/ratings", { method: "POST", json: { ...ref, criterion: this.criterion, score, rater } });
      this.scores.set(`${ref.run}/${ref.node}/${ref.image_index}/${this.criterion}`, score);
      this.paint(s);
    } catch (err) {
      toast(`Rating not saved: ${err.message}`, "error");
    }
  }

  move(s, key) {
    const items = this.items(s);
    if (!items.length) return;
    const top = Math.round(items[0].getBoundingClientRect().top);
    const cols = Math.max(1, items.filter((f) => Math.round(f.getBoundingClientRect().top) === top).length);
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[key];
    s.selected = Math.max(0, Math.min(items.length - 1, s.selected + step));
    items[s.selected].scrollIntoView({ block: "nearest", inline: "nearest" });
    this.paint(s);
  }

  onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e) || $("#rater-dialog:not([hidden])")) return;
    if (this.ab) {
      this.abKey(e);
      return;
    }
    const s = this.active();
    if (!s) return;
    const k = e.key;
    if (/^[1-5]$/.test(k)) this.rate(s, Number(k));
    else if (k.startsWith("Arrow")) this.move(s, k);
    else if (k === "Tab" || k.toLowerCase() === "r") this.cycleCriterion(e.shiftKey ? -1 : 1);
    else if (k === "Escape") this.setRating(s, false);
    else return;
    e.preventDefault();
    e.stopImmediatePropagation();
  }

  // --- A/B ---------------------------------------------------------------------------------------
  abQuestion() {
    const name = CRITERIA.find(([c]) => c === this.criterion)?.[1] ?? this.criterion;
    return `Which is better? (${name}) — ← or A: left · → or B: right · S: skip · Tab: criterion · Esc: close`;
  }

  async openAb(s) {
    const refs = [];
    for (const fig of this.items(s)) {
      const ref = await this.refOf(fig);
      if (ref) refs.push({ ref, src: fig.querySelector("img")?.src });
    }
    if (refs.length < 2) {
      toast("A/B needs at least two finished images here", "warn");
      return;
    }
    if (!(await this.askRater())) return;
    const overlay = el("div", { className: "rating-overlay", id: "ab-overlay" });
    const label = el("p", { className: "ab-question", textContent: "" });
    const left = el("figure", { className: "ab-side ab-left" }, el("img", { alt: "" }));
    const right = el("figure", { className: "ab-side ab-right" }, el("img", { alt: "" }));
    const count = el("p", { className: "note ab-count" });
    const close = el("button", { className: "close", textContent: "×", title: "Close (Esc)" });
    close.addEventListener("click", () => this.closeAb());
    left.addEventListener("click", () => this.choose("a"));
    right.addEventListener("click", () => this.choose("b"));
    overlay.append(close, label, el("div", { className: "ab-pair" }, left, right), count);
    document.body.append(overlay);
    this.ab = { surface: s, refs, overlay, label, left, right, count, seen: new Map(), chosen: 0, pair: null };
    label.textContent = this.abQuestion();
    this.nextPair();
  }

  /** A pair compared least often so far (ties at random), in random order. */
  nextPair() {
    const ab = this.ab;
    const pairs = [];
    for (let i = 0; i < ab.refs.length; i += 1) for (let j = i + 1; j < ab.refs.length; j += 1) pairs.push([i, j]);
    const least = Math.min(...pairs.map(([i, j]) => ab.seen.get(`${i}/${j}`) ?? 0));
    const fresh = pairs.filter(([i, j]) => (ab.seen.get(`${i}/${j}`) ?? 0) === least);
    const [i, j] = fresh[Math.floor(Math.random() * fresh.length)];
    ab.pair = Math.random() < 0.5 ? [i, j] : [j, i];
    ab.left.querySelector("img").src = ab.refs[ab.pair[0]].src;
    ab.right.querySelector("img").src = ab.refs[ab.pair[1]].src;
    ab.count.textContent = `${ab.chosen} choice(s) made · ${ab.refs.length} images`;
  }

  async choose(winner) {
    const ab = this.ab;
    if (!ab || ab.busy) return;
    const [i, j] = ab.pair;
    ab.busy = true;
    try {
      await api("/api/ratings", { method: "POST", json: { a: ab.refs[i].ref, b: ab.refs[j].ref, winner,
        criterion: this.criterion, rater: this.rater } });
      const key = `${Math.min(i, j)}/${Math.max(i, j)}`;
      ab.seen.set(key, (ab.seen.get(key) ?? 0) + 1);
      ab.chosen += 1;
      this.nextPair();
    } catch (err) {
      toast(`Choice not saved: ${err.message}`, "error");
    } finally {
      ab.busy = false;
    }
  }

  abKey(e) {
    const k = e.key.toLowerCase();
    if (k === "arrowleft" || k === "a") this.choose("a");
    else if (k === "arrowright" || k === "b") this.choose("b");
    else if (k === "s") this.nextPair();
    else if (k === "tab" || k === "r") this.cycleCriterion(e.shiftKey ? -1 : 1);
    else if (k === "escape") this.closeAb();
    else return;
    e.preventDefault();
    e.stopImmediatePropagation();
  }

  closeAb() {
    this.ab?.overlay.remove();
    this.ab = null;
  }
}

/** Installs ratings: the gallery's controls (the grid attaches its own). */
export function installRatings(app) {
  const ratings = new Ratings(app);
  app.ratings = ratings;
  const tools = el("div", { className: "tab-tools gallery-tools" });
  $("#tab-gallery").prepend(tools);
  ratings.attach($("#gallery"), "figure[data-run]", tools);
  new MutationObserver(() => {
    const s = ratings.surfaces.get($("#gallery"));
    if (s?.rating || ratings.scores.size) ratings.paint(s);
  }).observe($("#gallery"), { childList: true });
}
