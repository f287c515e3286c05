"""A browser oracle for "inert": user and model text on a page runs nothing, loads nothing, breaks nothing.

`Watch(page, site)` arms a Playwright page before its first navigation:

- dialogs (``alert``/``confirm``/``prompt``/``beforeunload``) are recorded and dismissed;
- requests, websockets, frames and navigations that leave the test server's
  origin are recorded, and such requests are aborted (nothing reaches a network);
- an init script installs a MutationObserver on every document at its start,
  so an element or attribute that a payload inserts only for a moment (while a
  reply streams, during an htmx swap) is recorded in ``window.__violations``
  even if a later swap removes it.

`Watch.check(...)` then inspects the whole document, in the page's own
JavaScript, against the oracle of tests/fixtures/xss/SOURCES.md:

- no ``<script>`` but the site's own (``src`` under ``/static/`` of this origin, or its
  JavaScript catalog ``/jsi18n/``);
- no ``on*`` attribute anywhere; no ``iframe/frame/object/embed/applet/base/portal``;
  no ``meta/link/style`` inside ``<body>``; no ``href/src/action/formaction/
  poster/background/xlink:href/...`` whose value, with whitespace and control
  characters removed and lower-cased, starts with ``javascript:``, ``vbscript:``,
  ``data:`` or ``file:``; no ``srcdoc``;
- inside content containers (message bodies, conversation titles, persona
  descriptions, search hits): only the elements and attributes that
  `conversations.rendering` allows in rendered Markdown (so no ``hx-*``,
  ``data-hx-*``, ``ws-*``, ``id``, ``name``, ``style``, no form
  controls but a task list's disabled checkbox), every link ``rel="noopener noreferrer"``,
  ``target="_blank"`` if any, and http(s)/mailto only,
  no ``<img>`` (remote images are off by default); a user's message holds
  only MathML (its formulas) and display math's ``<span class="math-display">``;
  text-only containers (streaming replies, titles, descriptions) hold no element at all;
- the page hooks the chat page relies on (the elements its script and htmx
  find by id and selector) are intact and not clobbered: one ``#composer``
  form with ``ws-send`` holding the only ``textarea[name=message]``, one
  ``#messages``, well-formed ``article.message`` bubbles, ``#stop``,
  ``#new-chat``, ``#conversations``; no duplicate ids; ``document``'s lookup
  methods are the native ones; htmx is still htmx.

Per-item expectations (`Item`) add what a generic scan cannot know: the exact
text a text-only container must show, the literal code a fence must show, the
link a remote image must have become.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field

from playwright.sync_api import Error, Page, Request, WebSocket

# Shared by the observer and the final check; defined once per document, before any page script.
INIT_SCRIPT = r"""
(() => {
  if (window.__inert) return;
  const CONTENT = [
    ".message-body", ".conversation-link > span", ".conversation-heading > span",
    ".persona-description", ".search-hit-title", ".search-hit-snippet",
  ].join(", ");
  const NEVER = new Set(["iframe", "frame", "frameset", "object", "embed", "applet", "base", "portal"]);
  const NOT_IN_BODY = new Set(["meta", "link", "style"]);
  const URL_ATTRIBUTES = new Set([
    "href", "src", "action", "formaction", "poster", "background", "xlink:href", "data", "codebase",
    "cite", "longdesc", "lowsrc", "dynsrc", "ping", "manifest", "srcset", "itemtype",
  ]);
  const DANGEROUS = /^(javascript|vbscript|data|file):/;
  // rendering.ALLOWED_TAGS / MATHML_TAGS / ALLOWED_ATTRIBUTES; nh3 adds rel and target to <a>,
  // type and disabled to <input>. No <img>: remote images are off.
  const MARKDOWN = {
    p: [], br: [], hr: [], h1: [], h2: [], h3: [], h4: [], h5: [], h6: [],
    strong: [], em: [], del: [], s: [], code: ["class"], pre: ["class"], blockquote: [],
    ul: ["class"], ol: ["start", "class"], li: ["class"], table: [], thead: [], tbody: [], tr: [],
    th: ["class"], td: ["class"], a: ["href", "title", "rel", "target"], span: ["class"],
    input: ["type", "disabled", "checked"],
    math: ["display"], mi: ["mathvariant"],
    mo: ["fence", "separator", "stretchy", "largeop", "movablelimits", "symmetric", "minsize", "maxsize",
         "lspace", "rspace", "form", "accent"],
    mstyle: ["displaystyle", "scriptlevel", "mathvariant", "mathsize"],
    mspace: ["width", "height", "depth", "linebreak"], mpadded: ["width", "height", "depth", "lspace", "voffset"],
    mfrac: ["linethickness"], mover: ["accent"], munder: ["accentunder"], munderover: ["accent", "accentunder"],
    menclose: ["notation"],
    mtable: ["columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines", "frame",
             "displaystyle"],
    mtr: ["columnalign", "rowalign"], mtd: ["columnalign", "rowalign", "columnspan", "rowspan"],
    mrow: [], mn: [], ms: [], mtext: [], msub: [], msup: [], msubsup: [], msqrt: [], mroot: [], mphantom: [],
    merror: [],
  };
  const SEARCH = {mark: [], span: ["class"]};
  // A user's message (rendering.render_user_text): text as typed, its formulas as MathML, display ones in a span.
  const USER_TEXT = Object.fromEntries(
    Object.entries(MARKDOWN).filter(([tag]) => tag === "span" || tag.startsWith("m")));

  function snippet(node) {
    const html = (node.outerHTML || node.textContent || "").replace(/\s+/g, " ");
    return html.length > 160 ? html.slice(0, 160) + "…" : html;
  }

  function normalizedUrl(value) {
    // URL parsers drop leading C0 controls and spaces and every tab/newline; be stricter still.
    return value.replace(/[\s\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]/g, "").toLowerCase();
  }

  function isSiteScript(script) {
    if (!script.hasAttribute("src") || script.textContent.trim()) return false;
    try {
      const url = new URL(script.getAttribute("src"), document.baseURI);
      // The site's scripts: its static files and Django's JavaScript catalog (chatsite/urls.py).
      return url.origin === location.origin && (url.pathname.startsWith("/static/") || url.pathname === "/jsi18n/");
    } catch (e) {
      return false;
    }
  }

  function isSiteCodeCopy(el) {
    // chat.js adds <button type="button" class="code-copy">Copy</button> to every rendered <pre>.
    return el.localName === "button" && el.className === "code-copy" && el.parentElement
      && el.parentElement.localName === "pre"
      && [...el.attributes].every((a) => a.name === "type" || a.name === "class");
  }

  function kindOf(container) {
    if (container.matches(".message-body.markdown")) return "markdown";
    if (container.matches("article.message[data-role=user] .message-body")) return "user";
    if (container.matches(".search-hit-title, .search-hit-snippet")) return "search";
    return "text";
  }

  // Problems of one element anywhere in the document (not content rules).
  function elementProblems(el) {
    const problems = [];
    const tag = el.localName;
    if (tag === "script" && !isSiteScript(el)) problems.push("script element");
    if (NEVER.has(tag)) problems.push(`<${tag}> element`);
    if (NOT_IN_BODY.has(tag) && document.body && document.body.contains(el)) problems.push(`<${tag}> in body`);
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) problems.push(`event handler attribute ${name}`);
      if (name === "srcdoc") problems.push("srcdoc attribute");
      if (URL_ATTRIBUTES.has(name) || name.endsWith(":href")) {
        const url = normalizedUrl(attr.value);
        if (DANGEROUS.test(url) || url.includes(",javascript:")) problems.push(`${name}=${url.slice(0, 40)}`);
      }
    }
    if ((tag === "a" || tag === "area") && el.hasAttribute("href")) {
      try {
        const scheme = new URL(el.getAttribute("href"), document.baseURI).protocol;
        if (["javascript:", "vbscript:", "data:", "file:"].includes(scheme)) problems.push(`link to ${scheme}`);
      } catch (e) { /* unparsable: the browser will not follow it either */ }
    }
    return problems;
  }

  function onlyHtmxClasses(value) {
    return value.split(/\s+/).filter(Boolean).every((c) => c.startsWith("htmx-"));
  }

  // Problems of an element inside a content container of `kind`.
  function contentProblems(el, kind) {
    if (kind === "text") return [`<${el.localName}> element in text-only content`];
    if (kind === "markdown" && isSiteCodeCopy(el)) return [];
    const allowed = {markdown: MARKDOWN, user: USER_TEXT, search: SEARCH}[kind][el.localName];
    if (!allowed) return [`<${el.localName}> element`];
    const problems = [];
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name === "class" && onlyHtmxClasses(attr.value)) continue;  // htmx's settling classes
      if (!allowed.includes(name)) problems.push(`attribute ${name} on <${el.localName}>`);
    }
    if (kind === "search" && el.localName === "span" && el.className !== "muted") problems.push("span class");
    if (kind === "user" && el.localName === "span" && el.className !== "math-display") problems.push("span class");
    if (el.localName === "input" && (el.type !== "checkbox" || !el.disabled)) problems.push("enabled form control");
    if (el.localName === "a") {
      const rel = (el.getAttribute("rel") || "").split(/\s+/);
      if (!rel.includes("noopener") || !rel.includes("noreferrer")) problems.push("link without rel=noopener");
      if (el.hasAttribute("target") && el.getAttribute("target") !== "_blank") problems.push("link target");
      const href = normalizedUrl(el.getAttribute("href") || "");
      if (!/^(https?:\/\/|mailto:)/.test(href)) problems.push(`link href ${href.slice(0, 40)}`);
    }
    return problems;
  }

  // Keys naming where a node is, innermost first: ancestor ids, persona slugs, search hit links.
  function anchorsOf(node) {
    const keys = [];
    for (let el = node; el && el.nodeType === 1; el = el.parentElement) {
      if (el.id) keys.push(el.id);
      if (el.dataset && el.dataset.persona) keys.push(el.dataset.persona);
      if (el.matches("a.search-hit-link")) keys.push(el.getAttribute("href"));
    }
    return keys;
  }

  function containerOf(el) {
    const container = el.parentElement && el.parentElement.closest(CONTENT);
    return container || null;
  }

  function problemsOf(el) {
    const problems = elementProblems(el);
    const container = containerOf(el);
    if (container) problems.push(...contentProblems(el, kindOf(container)));
    return problems;
  }

  // -- the observer: everything ever inserted, attributes ever set ------------
  window.__violations = [];
  window.__phase = "";
  window.__streamFrames = {};
  window.__streamedText = {};

  function record(el) {
    for (const problem of problemsOf(el)) {
      const violation = {phase: window.__phase, anchors: anchorsOf(el), problem, html: snippet(el)};
      // Reported at once (a navigation would lose the page's own list); the list is the fallback.
      if (typeof window.__inertReport === "function") window.__inertReport(violation);
      else window.__violations.push(violation);
    }
  }

  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "attributes") {
        if (m.target.nodeType === 1) record(m.target);
        continue;
      }
      for (const node of m.addedNodes) {
        if (node.nodeType !== 1) continue;
        record(node);
        for (const el of node.querySelectorAll("*")) record(el);
      }
      const target = m.target;
      if (target.nodeType === 1 && target.matches(".message-body") && m.addedNodes.length) {
        const article = target.closest("article.message");
        if (article && article.dataset.status === "streaming") {
          window.__streamFrames[article.id] = (window.__streamFrames[article.id] || 0) + 1;
        }
      }
      for (const node of m.removedNodes) {
        if (node.nodeType === 1 && node.matches("article.message[data-status=streaming]")) {
          const body = node.querySelector(".message-body");
          window.__streamedText[node.id] = body ? body.textContent : null;
        }
      }
    }
  }).observe(document, {childList: true, subtree: true, attributes: true});

  // -- the final check -------------------------------------------------------
  function unique(selector, tag, problems) {
    const found = document.querySelectorAll(selector);
    if (found.length !== 1) problems.push(`hook ${selector}: ${found.length} elements`);
    else if (tag && found[0].localName !== tag) problems.push(`hook ${selector} is a <${found[0].localName}>`);
    return found[0];
  }

  function hookProblems(hooks) {
    const problems = [];
    for (const name of ["getElementById", "querySelector", "querySelectorAll", "getElementsByName", "createElement"]) {
      if (document[name] !== Document.prototype[name]) problems.push(`document.${name} is clobbered`);
    }
    if (!window.htmx || typeof window.htmx.process !== "function") problems.push("htmx is clobbered or missing");
    unique("#new-chat", "a", problems);
    unique("#conversations", "nav", problems);
    unique("#main", "main", problems);
    if (hooks.includes("chat")) {
      const composer = unique("#composer", "form", problems);
      if (composer && !composer.hasAttribute("ws-send")) problems.push("#composer lost ws-send");
      const textarea = unique("textarea[name=message]", "textarea", problems);
      if (composer && textarea && !composer.contains(textarea)) problems.push("textarea outside #composer");
      if (composer && document.getElementById("composer") !== composer) problems.push("#composer is shadowed");
      unique("#messages", "div", problems);
      unique("#stop", "button", problems);
      for (const article of document.querySelectorAll("article.message")) {
        if (!["user", "assistant"].includes(article.dataset.role)) problems.push(`${article.id}: data-role`);
        if (!article.dataset.status) problems.push(`${article.id}: data-status`);
        if (article.querySelectorAll(".message-body").length !== 1) problems.push(`${article.id}: .message-body`);
      }
    }
    const ids = new Map();
    for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
    for (const [id, count] of ids) if (count > 1) problems.push(`id ${JSON.stringify(id)} used ${count} times`);
    for (const token of document.querySelectorAll("[name=csrfmiddlewaretoken]")) {
      if (containerOf(token) || token.closest(CONTENT)) problems.push("csrfmiddlewaretoken inside content");
    }
    return problems;
  }

  function visible(el) {
    const style = getComputedStyle(el);
    return el.getClientRects().length > 0 && style.visibility !== "hidden" && style.display !== "none";
  }

  function itemProblems(item) {
    const el = document.querySelector(item.selector);
    if (!el) return [`not on the page (${item.selector})`];
    const problems = [];
    if (item.text !== null && el.textContent !== item.text) {
      problems.push(`shows ${JSON.stringify(el.textContent.slice(0, 80))}, not the literal text`);
    }
    if (item.code !== null) {
      const codes = [...el.querySelectorAll("code")];
      const literal = codes.find((c) => c.textContent.trim() === item.code.trim());
      if (!literal) problems.push(`code not shown literally: ${JSON.stringify(codes.map((c) => c.textContent))}`);
      else if (!visible(literal)) problems.push("code is not visible");
    }
    if (item.link !== null) {
      const links = [...el.querySelectorAll("a")].filter((a) => a.getAttribute("href") === item.link);
      if (links.length !== 1) problems.push(`no link to ${item.link}`);
      if (el.querySelector("img")) problems.push("remote image shown as <img>");
    }
    return problems;
  }

  window.__inert = {
    check(args) {
      const out = [];
      const push = (anchors, problem, html) => out.push({phase: "check", anchors, problem, html});
      for (const el of document.querySelectorAll("*")) {
        for (const problem of problemsOf(el)) push(anchorsOf(el), problem, snippet(el));
      }
      for (const problem of hookProblems(args.hooks)) push(["page"], problem, "");
      for (const item of args.items) {
        for (const problem of itemProblems(item)) push([item.label], problem, "");
      }
      return out.concat(window.__violations.splice(0));
    },
  };
})();
"""


@dataclass(frozen=True)
class Item:
    """One payload shown in one place: where (`selector`), who it is (`label`), what must be seen.

    `text`: the exact textContent of a text-only container; `code`: the
    literal text of a code element inside it; `link`: the href a Markdown
    image must have become (remote images are links by policy).
    """

    selector: str
    label: str
    text: str | None = None
    code: str | None = None
    link: str | None = None


def dom_text(text: str) -> str:
    """Return the text a browser shows for `text` written escaped into HTML.

    The HTML parser turns CR LF and lone CR into LF (HTML Standard,
    "Preprocessing the input stream") and drops U+0000 in element content
    ("in body" insertion mode).
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


@dataclass
class Watch:
    """Record what a page does that inert content never makes it do; see the module docstring.

    `events` (dialogs, requests, frames, navigations) and `observed` (what the
    MutationObserver saw) are tagged with `phase`, set by the test before each
    step (a payload's line, a view).
    """

    page: Page
    origin: str
    phase: str = "load"
    events: list[str] = field(default_factory=list)
    observed: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        page = self.page
        page.context.expose_binding("__inertReport", self._on_report)
        page.context.add_init_script(INIT_SCRIPT)
        page.on("dialog", self._on_dialog)
        page.on("request", self._on_request)
        page.on("websocket", self._on_websocket)
        page.on("popup", lambda popup: self.events.append(f"{self.phase}: popup {popup.url}"))
        page.on("frameattached", lambda frame: self.events.append(f"{self.phase}: frame attached"))
        page.on("framenavigated", self._on_navigated)
        page.route(re.compile(rf"^(?!{re.escape(self.origin)}/)"), lambda route: route.abort())

    def _on_report(self, source, violation: dict) -> None:
        self.observed.append({**violation, "phase": self.phase})

    def _on_dialog(self, dialog) -> None:
        self.events.append(f"{self.phase}: {dialog.type} dialog {dialog.message!r}")
        with contextlib.suppress(Error):  # the page may have gone away meanwhile
            dialog.dismiss()

    def _on_request(self, request: Request) -> None:
        if not request.url.startswith(self.origin + "/"):
            self.events.append(f"{self.phase}: request to {request.url}")

    def _on_websocket(self, websocket: WebSocket) -> None:
        if not websocket.url.startswith(self.origin.replace("http://", "ws://", 1) + "/"):
            self.events.append(f"{self.phase}: websocket to {websocket.url}")

    def _on_navigated(self, frame) -> None:
        if frame == self.page.main_frame and not frame.url.startswith(self.origin + "/"):
            self.events.append(f"{self.phase}: navigated to {frame.url}")

    def set_phase(self, phase: str) -> None:
        """Name what happens next (a payload's line, a view) in recorded events and violations."""
        self.phase = phase
        self.page.evaluate("phase => { window.__phase = phase; }", phase)

    def check(self, *, hooks: tuple[str, ...] = (), items: list[Item] = (), labels: dict[str, str]) -> list[str]:
        """Return the violations on the page now and those observed since the last check, as readable lines.

        `hooks`: "chat" for a conversation page (composer, messages, stop);
        the sidebar's hooks are always checked. `labels` names the payload
        behind an anchor (element id, persona slug, search hit href).
        """
        args = {"hooks": list(hooks), "items": [asdict(item) for item in items]}
        try:
            found = self.page.evaluate("args => window.__inert.check(args)", args)
        except Error as exc:  # e.g. content navigated the page away (a meta refresh)
            problem = f"could not inspect the page: {exc.message.splitlines()[0]}"
            found = [{"phase": self.phase, "anchors": ["page"], "problem": problem, "html": ""}]
        found += self.observed
        self.observed = []
        return sorted({_line(v, labels) for v in found})


def _line(violation: dict, labels: dict[str, str]) -> str:
    anchors = violation["anchors"]
    where = next((labels[key] for key in anchors if key in labels), anchors[0] if anchors else "?")
    html = f" in {violation['html']}" if violation["html"] else ""
    return f"{where} [{violation['phase']}]: {violation['problem']}{html}"
