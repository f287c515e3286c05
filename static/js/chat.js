// Chat page behaviour. The composer: Enter sends (on touch keyboards Enter adds a
// line and the Send button sends), Shift+Enter adds a line, one idempotency key per
// message, and the text stays in the box until the server says it took it (a
// refusal shows its reason beside it); Send turns into Stop while a reply streams
// (Esc stops too); "Reconnecting…" while the socket is down, a message caught by
// the drop sent again once it is back. The view follows a streaming reply unless
// the reader scrolled up ("Jump to latest" then). Copy gives a message's Markdown;
// editing the last question; older messages loaded on scroll without moving what
// the reader sees; asking the server again for a reply that stays silent while
// shown as streaming; the tab title follows the conversation's.
// Text is only ever read from the page and set as text, never as HTML.
(function () {
  "use strict";

  // Django's JavaScript catalog defines gettext before this script runs; English if it did not load.
  var gettext = window.gettext || function (text) { return text; };

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function composer() { return document.getElementById("composer"); }
  function messageBox() { var form = composer(); return form && form.querySelector('textarea[name="message"]'); }
  function messageList() { return document.getElementById("messages"); }

  // A touch keyboard has no Shift+Enter: there Enter adds a line and the Send button sends.
  var touch = !!(window.matchMedia && window.matchMedia("(pointer: coarse)").matches);

  function grow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  function streaming() { return !!document.querySelector('#messages [data-status="streaming"]'); }

  // ---- The composer's state ----
  //
  // pending: the message sent and not yet answered, {form, key, action, text, sent, sentAt, resend}.
  // The server answers every composer frame with #composer-alert carrying
  // data-outcome ("accepted" or "refused") and the frame's key
  // (fragments.send_outcome_html); only "accepted" empties the box.
  var pending = null;
  // The socket: "connecting" (first open), "open", "down" (htmx-ext-ws reconnects), "closed" (refused: 44xx).
  var connection = "connecting";

  function setAlert(text) {
    var alert = document.getElementById("composer-alert");
    if (alert) alert.textContent = text;
  }

  function refresh() {
    var form = composer();
    var live = streaming();
    var send = document.getElementById("send");
    var stop = document.getElementById("stop");
    if (send) {
      send.hidden = live && !!stop;
      send.disabled = !!pending || connection === "down" || connection === "closed";
    }
    if (stop) stop.hidden = !live;
    if (form) {
      form.classList.toggle("sending", !!pending);
      form.setAttribute("aria-busy", pending ? "true" : "false");
      var box = messageBox();
      if (box) box.readOnly = !!pending;
    }
    var status = document.getElementById("connection-status");
    if (status) {
      status.hidden = connection !== "down";
      status.textContent = pending
        ? gettext("Reconnecting… Your message will be sent when the connection is back.")
        : gettext("Reconnecting…");
    }
    var chat = document.querySelector(".chat");
    if (chat) chat.dataset.connection = connection;
  }

  function release() {
    pending = null;
    refresh();
  }

  // Why a send cannot go now, or "" when it can.
  function blocked(form) {
    if (pending) return "pending";
    if (form.hasAttribute("ws-send")) {
      if (streaming()) return "streaming";
      if (connection === "down" || connection === "closed") return "offline";
    }
    return "";
  }

  // Every composer submit (Enter, the Send button) passes here first, in the capture
  // phase, before htmx sends it over the socket or posts it (a new chat's first message).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form !== composer()) return;
    var box = messageBox();
    if (blocked(form) || !box.value.trim()) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    var key = newKey();
    form.querySelector('input[name="idempotency_key"]').value = key;
    pending = {
      form: form, key: key, action: form.querySelector('input[name="action"]').value, text: box.value,
      sent: false, sentAt: 0, resend: false,
    };
    following = true;
    refresh();
  }, true);

  function outcomeArrived() {
    var alert = document.getElementById("composer-alert");
    if (!alert || !alert.dataset.outcome) return;
    var outcome = alert.dataset.outcome;
    var key = alert.dataset.key;
    delete alert.dataset.outcome;
    if (!pending || key !== pending.key) return;
    var box = messageBox();
    if (outcome === "accepted") {
      box.value = "";
      document.dispatchEvent(new CustomEvent("chat:accepted"));
      grow(box);
      endEdit();
      release();
    } else {
      release();
      box.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Escape") {
      var stop = document.getElementById("stop");
      if (stop && !stop.hidden) {
        event.preventDefault();
        document.getElementById("stop-form").requestSubmit();
      } else if (composer() && composer().classList.contains("editing") && target === messageBox()) {
        endEdit();
        messageBox().value = "";
      }
      return;
    }
    if (!target.matches || !target.matches('#composer textarea[name="message"]')) return;
    // isComposing: Enter that confirms a Chinese/Japanese IME candidate must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !touch) {
      event.preventDefault();
      if (target.value.trim() && !blocked(target.form)) target.form.requestSubmit();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches('#composer textarea[name="message"]')) grow(event.target);
  });

  // Continue and Regenerate buttons send frames too: a key keeps a double click to one reply.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var params = event.detail.parameters;
    if (event.target !== composer() && params.action === "continue") params.idempotency_key = newKey();
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    if (pending && event.target === pending.form) {
      pending.sent = true;
      pending.sentAt = Date.now();
    }
  });

  function sendAgain() {
    pending.sentAt = Date.now();
    socket.send(JSON.stringify({ action: pending.action, message: pending.text, idempotency_key: pending.key }));
  }

  // A new chat's first message goes by HTTP (the chat is created then): answers that swap nothing.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!pending || event.detail.elt !== pending.form) return;
    if (event.detail.successful) {
      outcomeArrived();
    } else {
      release();
      setAlert(gettext("The message could not be sent. Check the connection and try again."));
    }
  });

  // ---- Following the conversation ----
  //
  // `following`: the view stays at the end as replies grow. Scrolling up stops it
  // (and shows "Jump to latest"); scrolling back to the end, sending, or the
  // button resumes it. Growth never moves scrollTop up, so only the reader does.
  var FOLLOW_SLACK_PX = 40;
  var following = true;
  var lastScrollTop = 0;

  function fromEnd(list) { return list.scrollHeight - list.scrollTop - list.clientHeight; }

  function scrollToEnd(force) {
    var list = messageList();
    if (!list) return;
    if (force) following = true;
    if (following) list.scrollTop = list.scrollHeight;
    lastScrollTop = list.scrollTop;
    refreshJump();
  }

  function refreshJump() {
    var list = messageList();
    var jump = document.getElementById("jump-latest");
    if (list && jump) jump.hidden = following || fromEnd(list) < FOLLOW_SLACK_PX;
  }

  document.addEventListener("scroll", function (event) {
    var list = messageList();
    if (event.target !== list) return;
    if (fromEnd(list) < FOLLOW_SLACK_PX) following = true;
    else if (list.scrollTop < lastScrollTop) following = false;
    lastScrollTop = list.scrollTop;
    refreshJump();
  }, true);

  // ---- The socket ----

  // When the socket last brought a frame; see the stall check below.
  var lastFrameAt = Date.now();

  document.addEventListener("htmx:wsAfterMessage", function () {
    lastFrameAt = Date.now();
    outcomeArrived();
    refresh();
    scrollToEnd(false);
    refreshTitle();
  });

  function streamingIds() {
    return Array.prototype.map.call(
      document.querySelectorAll('#messages article[data-status="streaming"]'),
      function (article) { return article.dataset.messageId; }
    );
  }

  // On every (re)open, ask the server to bring the page up to date: replies shown
  // as streaming that finished meanwhile, and after a reconnect everything. A
  // message whose answer the drop may have swallowed goes again, with its key:
  // if the server had taken it, it says so and saves nothing twice.
  var socketOpenedBefore = false;
  var socket = null;
  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    socket.send(JSON.stringify({ action: "sync", streaming: streamingIds(), full: socketOpenedBefore }));
    socketOpenedBefore = true;
    connection = "open";
    lastFrameAt = Date.now();
    if (pending && pending.resend) {
      pending.resend = false;
      sendAgain();
    }
    refresh();
  });

  // A bubble still shown as streaming while the socket has said nothing for
  // STALL_MS: its final bubble may have been lost on the way (a channel layer
  // delivers at most once). Ask again, as after a reconnect: the server sends
  // the final bubbles of the replies that ended, and the text so far of the others.
  // A message left unanswered as long is sent again, with its key: taken twice, it is saved once.
  var STALL_MS = 10000;
  setInterval(function () {
    if (!socket || connection !== "open") return;
    if (pending && pending.sent && Date.now() - pending.sentAt >= STALL_MS) sendAgain();
    if (Date.now() - lastFrameAt < STALL_MS) return;
    var ids = streamingIds();
    if (!ids.length) return;
    lastFrameAt = Date.now();
    socket.send(JSON.stringify({ action: "sync", streaming: ids, full: false }));
  }, 1000);

  // htmx-ext-ws reconnects after 1006, 1011, 1012 and 1013; a 44xx close is the
  // server refusing (its reason is shown). Any other close of a socket whose
  // page is still shown (a server going away: 1001) is reopened here.
  var RETRIED_BY_HTMX = [1006, 1011, 1012, 1013];
  var reopenDelayMs = 1000;
  document.addEventListener("htmx:wsClose", function (event) {
    var closeEvent = event.detail && event.detail.event;
    var code = closeEvent && closeEvent.code;
    var chat = event.target;
    if (!chat.isConnected) return;  // The page moved on: htmx closed it.
    if (pending && pending.sent) pending.resend = true;
    if (code >= 4400 && code < 4500) {
      connection = "closed";
      if (pending) release();
      setAlert(closeEvent.reason || gettext("The connection was refused. Reload the page."));
    } else {
      connection = "down";
      if (RETRIED_BY_HTMX.indexOf(code) < 0 && event.detail.socketWrapper) {
        var wrapper = event.detail.socketWrapper;
        setTimeout(function () { if (chat.isConnected) wrapper.reconnect(); }, reopenDelayMs);
        reopenDelayMs = Math.min(reopenDelayMs * 2, 30000);
      }
    }
    refresh();
  });

  document.addEventListener("htmx:wsOpen", function () { reopenDelayMs = 1000; });

  // ---- The tab title: "conversation title · site name", live ----
  function refreshTitle() {
    var chat = document.querySelector(".chat[data-site-name]");
    if (!chat) return;
    var heading = chat.querySelector('[id$="-heading-title"], #new-chat-title');
    if (!heading) return;  // Being renamed: the title is in a form for now.
    // As the server writes <title>; the browser collapses its whitespace the same way for both.
    var wanted = heading.textContent + " · " + chat.dataset.siteName;
    if (wanted !== titleSet) document.title = titleSet = wanted;
  }
  var titleSet = null;

  // ---- Copy and edit ----

  // Copy: a message's Markdown source (data-source), or a code block's text (buttons are added to every <pre>).
  function copyText(text, button) {
    function done() {
      var label = button.textContent;
      button.textContent = gettext("Copied");
      setTimeout(function () { button.textContent = label; }, 1200);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }

  function addCodeCopyButtons(root) {
    (root.querySelectorAll ? root : document).querySelectorAll(".markdown pre").forEach(function (pre) {
      if (pre.querySelector(".code-copy")) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "code-copy";
      button.textContent = gettext("Copy");
      pre.appendChild(button);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".action-copy, .code-copy, .action-edit, #cancel-edit, #jump-latest");
    if (!button) return;
    if (button.id === "jump-latest") {
      scrollToEnd(true);
    } else if (button.classList.contains("code-copy")) {
      var code = button.parentElement.querySelector("code") || button.parentElement;
      copyText(code.innerText, button);
    } else if (button.classList.contains("action-copy")) {
      copyText(button.dataset.source || "", button);
    } else if (button.classList.contains("action-edit")) {
      startEdit(button.dataset.source || "");
    } else {
      endEdit();
      messageBox().value = "";
    }
  });

  // Edit: the composer takes the last question's text and sends it as an "edit".
  function startEdit(text) {
    var form = composer();
    if (!form || pending) return;
    var textarea = messageBox();
    form.querySelector('input[name="action"]').value = "edit";
    form.classList.add("editing");
    textarea.value = text;
    grow(textarea);
    textarea.focus();
  }

  function endEdit() {
    var form = composer();
    if (!form) return;
    form.querySelector('input[name="action"]').value = "send";
    form.classList.remove("editing");
  }

  document.addEventListener("htmx:load", function (event) { addCodeCopyButtons(event.detail.elt); });

  // Older messages. The page shows the latest ones under a sentinel
  // (.messages-older) that htmx replaces with the page before it when it
  // scrolls into view. The older bubbles go in above the ones the reader
  // sees; keeping the distance to the bottom of the list keeps those in place.
  //
  // The work after a swap runs as a microtask queued before it: htmx swaps
  // synchronously after its before-swap events, and its after-swap events
  // fire on the element that asked, which may have left the page by then.
  var olderPages = 0;  // older pages loaded since the list was last replaced

  document.addEventListener("htmx:beforeSwap", function (event) {
    var sentinel = event.detail.target;
    var list = messageList();
    // The sentinel of a list replaced meanwhile is off the page: its events do not reach this listener,
    // and its page goes where it is, off the page too.
    if (!event.detail.shouldSwap || !list || !sentinel.classList || !sentinel.classList.contains("messages-older")) return;
    var bottom = list.scrollHeight - list.scrollTop;
    queueMicrotask(function () {
      if (sentinel.isConnected) return;  // Not swapped after all.
      list.scrollTop = list.scrollHeight - bottom;
      lastScrollTop = list.scrollTop;
      // Reading older messages: not following, whether or not the scroll event that brought the
      // reader to the top has fired yet (it may come after this swap, and then sees no move up).
      following = fromEnd(list) < FOLLOW_SLACK_PX;
      refreshJump();
      olderPages += 1;
      seekStep();
    });
  });

  // Replacing the whole list (a version switch, the resync after a reconnect,
  // the loader that fetches it over HTTP when it is too large for a frame)
  // brings back the latest page only. The reader stays where they were: at
  // the end if they were following, else at the bubble at the top of the view;
  // if that is on an older page, those pages load again (no more of them
  // than were loaded before). A version switch replaces the list twice (the
  // broadcast to every tab, and the answer to the click): the second
  // replacement starts the search for the same bubble again.
  var seeking = null;  // {id, offset, atEnd, budget, pages}: where to bring the reader back, pages it may load

  function readingPlace(list) {
    var top = list.getBoundingClientRect().top;
    var bubbles = list.querySelectorAll(":scope > article");
    for (var i = 0; i < bubbles.length; i++) {
      var box = bubbles[i].getBoundingClientRect();
      // At the end by where the view is, not by `following` alone: a scroll event may still be on its way.
      if (box.bottom > top) return { id: bubbles[i].id, offset: box.top - top, atEnd: following && fromEnd(list) < FOLLOW_SLACK_PX };
    }
    return null;
  }

  function seekStep() {
    var list = messageList();
    if (!list) seeking = null;  // The conversation left the page.
    if (!seeking || list.querySelector(":scope > .messages-loading")) return;  // Coming over HTTP: its swap calls back.
    var bubble = document.getElementById(seeking.id);
    if (seeking.atEnd || bubble) {
      if (seeking.atEnd) {
        scrollToEnd(true);
      } else {
        list.scrollTop += bubble.getBoundingClientRect().top - list.getBoundingClientRect().top - seeking.offset;
        // Following by where the reader is now: a replacement that came while the pages reloaded may have
        // left the view at the end of its shorter list meanwhile, and the next frame would take them there.
        following = fromEnd(list) < FOLLOW_SLACK_PX;
        refreshJump();
      }
      lastScrollTop = list.scrollTop;
      seeking = null;
      return;
    }
    var sentinel = list.querySelector(":scope > .messages-older");
    if (!sentinel || seeking.pages <= 0) {
      seeking = null;
      return;
    }
    if (sentinel.classList.contains("htmx-request")) return;  // Already loading: its swap calls seekStep.
    seeking.pages -= 1;
    // Asked for here rather than triggered: a sentinel just swapped in gets htmx's listeners only once it settles.
    htmx.ajax("GET", sentinel.getAttribute("hx-get"), { source: sentinel, target: sentinel, swap: "outerHTML" });
  }

  function listReplaced(reading) {
    if (seeking) {
      seeking.pages = seeking.budget;
    } else if (reading) {
      seeking = { id: reading.id, offset: reading.offset, atEnd: reading.atEnd, budget: olderPages, pages: olderPages };
    }
    olderPages = 0;
    seekStep();
  }

  // Bubbles sent over the socket: appended below (nothing to do), or the whole list.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var list = event.detail.target;
    if (!list || list.id !== "messages") return;
    var first = list.querySelector(":scope > article");
    var reading = seeking ? null : readingPlace(list);
    queueMicrotask(function () {
      if (first && !first.isConnected) listReplaced(reading);
    });
  });

  // The list fetched over HTTP (the loader of a list too large for a frame) replaces the element itself.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var list = event.detail.target;
    if (!event.detail.shouldSwap || !list || list.id !== "messages") return;
    var reading = seeking ? null : readingPlace(list);
    queueMicrotask(function () { listReplaced(reading); });
  });

  // A page part swapped in (a rename in the header): the title may have changed.
  document.addEventListener("htmx:afterSettle", refreshTitle);

  function pageOpened() {
    addCodeCopyButtons(document);
    var box = messageBox();
    if (box && touch && box.dataset.touchPlaceholder) box.placeholder = box.dataset.touchPlaceholder;
    refresh();
    refreshTitle();
    // A link to a bubble (a search hit: ?around=...#message-<id>) opens at that bubble, else at the end.
    var linked = location.hash && document.getElementById(location.hash.slice(1));
    if (linked && linked.parentElement === messageList()) {
      following = false;
      linked.scrollIntoView({ block: "start" });
      lastScrollTop = messageList().scrollTop;
      refreshJump();
    } else {
      scrollToEnd(true);
      if (box && !touch) box.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", pageOpened);
  // A new chat's first message brings the conversation into the main panel.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "main" || !document.querySelector("#main > .chat")) return;
    if (pending && !pending.form.isConnected) pending = null;  // Taken: the chat it created is shown.
    connection = "connecting";
    socketOpenedBefore = false;
    pageOpened();
  });
})();
