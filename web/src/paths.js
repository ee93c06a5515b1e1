// Long file paths: cut in the middle (the start and the file name stay), the whole in a tooltip.

/** `text` shortened to at most `max` characters with "…" in the middle. */
export function middleEllipsis(text, max = 36) {
  const s = String(text);
  if (s.length <= max) return s;
  const tail = Math.ceil((max - 1) / 2);
  const head = max - 1 - tail;
  return `${s.slice(0, head)}…${s.slice(s.length - tail)}`;
}

/** Sets an element's text to the shortened path and its title to the whole one. */
export function showPath(el, text, max = 36) {
  el.textContent = middleEllipsis(text, max);
  el.title = String(text);
  return el;
}
