"""WCAG 2.2 contrast of a rendered page, measured in the browser: each piece of text shown against what lies under it.

`low_contrast(page)` returns one line per element whose own text (or
placeholder) has less contrast with its background than success criterion
1.4.3 asks: 4.5:1, or 3:1 for large text (at least 24 px, or 18.66 px bold).
Formulas: WCAG 2.2, "relative luminance" and "contrast ratio" definitions
(https://www.w3.org/TR/WCAG22/#dfn-relative-luminance).

The background is the nearest ancestor's background colour, blended over the
ones below it when translucent (a background image is not looked at: the site
draws none under text). Text that is not shown (hidden, zero opacity, clipped
to nothing), decorative (aria-hidden) or inactive (a disabled control: SC
1.4.3's exception) is skipped.
"""

from __future__ import annotations

from playwright.sync_api import Page

_SCRIPT = r"""
() => {
  function parse(color) {
    const m = color.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  }
  function over(top, bottom) {
    const a = top.a + bottom.a * (1 - top.a);
    if (a === 0) return {r: 0, g: 0, b: 0, a: 0};
    const mix = (t, b) => (t * top.a + b * bottom.a * (1 - top.a)) / a;
    return {r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a};
  }
  function luminance(c) {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  }
  function ratio(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }
  function background(el) {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let color = {r: 255, g: 255, b: 255, a: 1};  // the canvas, were nothing opaque found
    const root = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (root && root.a > 0) color = over(root, color);
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  }
  function opacity(el) {
    let value = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      value *= Number(getComputedStyle(node).opacity);
    }
    return value;
  }
  function shown(el) {
    if (el.closest("[aria-hidden=true], [hidden]")) return false;
    const style = getComputedStyle(el);
    if (style.visibility !== "visible" || style.display === "none") return false;
    const rect = el.getBoundingClientRect();
    return rect.width > 0 && rect.height > 0;
  }
  function describe(el) {
    let name = el.localName;
    if (el.id) name += "#" + el.id;
    const classes = typeof el.className === "string" ? el.className.trim() : "";
    if (classes) name += "." + classes.split(/\s+/).join(".");
    const parent = el.parentElement;
    return (parent && parent.id ? "#" + parent.id + " > " : "") + name;
  }
  const problems = [];
  const seen = new Set();
  for (const el of document.querySelectorAll("body *")) {
    if (["script", "style", "template", "noscript"].includes(el.localName)) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const placeholder = (el.localName === "textarea" || el.localName === "input") && el.placeholder;
    if (!own && !placeholder) continue;
    if (!shown(el) || el.matches(":disabled") || el.closest("[disabled]")) continue;
    const alpha = opacity(el);
    if (alpha === 0) continue;
    const style = getComputedStyle(el);
    const colors = [];
    if (own) colors.push(["text", style.color]);
    if (placeholder) colors.push(["placeholder", getComputedStyle(el, "::placeholder").color]);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const bg = background(el);
    for (const [kind, value] of colors) {
      const fg = parse(value);
      if (!fg) continue;
      const seenText = over({...fg, a: fg.a * alpha}, bg);
      const r = ratio(seenText, bg);
      if (r < needed) {
        const text = (kind === "text" ? el.textContent.trim().replace(/\s+/g, " ") : el.placeholder).slice(0, 30);
        const under = `rgb(${Math.round(bg.r)},${Math.round(bg.g)},${Math.round(bg.b)})`;
        const found = `${r.toFixed(2)}:1 < ${needed} (${value} on ${under})`;
        const line = `${describe(el)} ${kind} ${JSON.stringify(text)}: ${found}`;
        if (!seen.has(line)) { seen.add(line); problems.push(line); }
      }
    }
  }
  return problems;
}
"""


def low_contrast(page: Page) -> list[str]:
    """Return a line for each shown element whose text contrast is below WCAG 2.2 AA (SC 1.4.3); [] when none."""
    return page.evaluate(_SCRIPT)


def text_count(page: Page) -> int:
    """Return how many shown elements with text of their own the check looked at (a check of nothing is no check)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter((el) =>
            [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())
            && el.getClientRects().length > 0).length"""
    )
