// Chat page behaviour: Enter sends, Shift+Enter adds a line, one idempotency key
// per send, the composer clears after a send, Stop shows while a reply streams,
// copy buttons on messages and code blocks, editing the last question, older
// messages loaded on scroll without moving what the reader sees, and asking the
// server again for a reply that stays silent while shown as streaming.
// Text is only ever read from the page (innerText) and set as text, never as HTML.
(function () {
  "use strict";

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function composer() { return document.getElementById("composer"); }

  function refreshStop() {
    var stop = document.getElementById("stop");
    if (!stop) return;
    stop.hidden = !document.querySelector('#messages [data-status="streaming"]');
  }

  function scrollToEnd(force) {
    var list = document.getElementById("messages");
    if (!list) return;
    var nearEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    if (force || nearEnd) list.scrollTop = list.scrollHeight;
  }

  function grow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!target.matches || !target.matches('#composer textarea[name="message"]')) return;
    // isComposing: Enter that confirms a Chinese/Japanese IME candidate must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (target.value.trim()) target.form.requestSubmit();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches('#composer textarea[name="message"]')) grow(event.target);
  });

  document.addEventListener("htmx:wsConfigSend", function (event) {
    if (event.target === composer()) event.detail.parameters.idempotency_key = newKey();
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = composer();
    if (event.target !== form) return;
    var textarea = form.querySelector("textarea");
    textarea.value = "";
    grow(textarea);
    scrollToEnd(true);
  });

  // When the socket last brought a frame; see the stall check below.
  var lastFrameAt = Date.now();

  document.addEventListener("htmx:wsAfterMessage", function () {
    lastFrameAt = Date.now();
    refreshStop();
    scrollToEnd(false);
  });

  function streamingIds() {
    return Array.prototype.map.call(
      document.querySelectorAll('#messages article[data-status="streaming"]'),
      function (article) { return article.dataset.messageId; }
    );
  }

  // On every (re)open, ask the server to bring the page up to date: replies shown
  // as streaming that finished meanwhile, and after a reconnect everything.
  var socketOpenedBefore = false;
  var socket = null;
  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    socket.send(JSON.stringify({ action: "sync", streaming: streamingIds(), full: socketOpenedBefore }));
    socketOpenedBefore = true;
    lastFrameAt = Date.now();
  });

  // A bubble still shown as streaming while the socket has said nothing for
  // STALL_MS: its final bubble may have been lost on the way (a channel layer
  // delivers at most once). Ask again, as after a reconnect: the server sends
  // the final bubbles of the replies that ended, and the text so far of the others.
  var STALL_MS = 10000;
  setInterval(function () {
    if (!socket || Date.now() - lastFrameAt < STALL_MS) return;
    var streaming = streamingIds();
    if (!streaming.length) return;
    lastFrameAt = Date.now();
    socket.send(JSON.stringify({ action: "sync", streaming: streaming, full: false }));
  }, 1000);

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail && event.detail.event && event.detail.event.code;
    var alert = document.getElementById("composer-alert");
    if (alert && code >= 4400 && code < 4500) {
      alert.textContent = event.detail.event.reason || "The connection was refused. Reload the page.";
    }
  });

  // Copy: a message's text, or a code block's (buttons are added to every <pre>).
  function copyText(text, button) {
    function done() {
      var label = button.textContent;
      button.textContent = button.dataset.copied || "Copied";
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
      button.textContent = "Copy";
      pre.appendChild(button);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".action-copy, .code-copy, .action-edit, #cancel-edit");
    if (!button) return;
    if (button.classList.contains("code-copy")) {
      var code = button.parentElement.querySelector("code") || button.parentElement;
      copyText(code.innerText, button);
    } else if (button.classList.contains("action-copy")) {
      var body = document.querySelector(button.dataset.copy);
      if (body) copyText(body.innerText, button);
    } else if (button.classList.contains("action-edit")) {
      startEdit(document.querySelector(button.dataset.edit));
    } else {
      endEdit();
      composer().querySelector("textarea").value = "";
    }
  });

  // Edit: the composer takes the last question's text and sends it as an "edit".
  function startEdit(body) {
    var form = composer();
    if (!form || !body) return;
    var textarea = form.querySelector("textarea");
    form.querySelector('input[name="action"]').value = "edit";
    form.classList.add("editing");
    textarea.value = body.innerText;
    grow(textarea);
    textarea.focus();
  }

  function endEdit() {
    var form = composer();
    if (!form) return;
    form.querySelector('input[name="action"]').value = "send";
    form.classList.remove("editing");
  }

  document.addEventListener("htmx:wsAfterSend", function (event) {
    if (event.target === composer()) endEdit();
  });

  document.addEventListener("htmx:load", function (event) { addCodeCopyButtons(event.detail.elt); });

  // Older messages. The page shows the latest ones under a sentinel
  // (.messages-older) that htmx replaces with the page before it when it
  // scrolls into view. The older bubbles go in above the ones the reader
  // sees; keeping the distance to the bottom of the list keeps those in place.
  //
  // The work after a swap runs as a microtask queued before it: htmx swaps
  // synchronously after its before-swap events, and its after-swap events
  // fire on the element that asked, which may have left the page by then.
  function messageList() { return document.getElementById("messages"); }

  var olderPages = 0;  // older pages loaded since the list was last replaced

  document.addEventListener("htmx:beforeSwap", function (event) {
    var sentinel = event.detail.target;
    var list = messageList();
    if (!event.detail.shouldSwap || !list || !sentinel.classList || !sentinel.classList.contains("messages-older")) return;
    if (!sentinel.isConnected) {
      // Asked for by a list that was replaced meanwhile: its page belongs to no list any more, and
      // counting it would move the reader after they were brought back.
      event.detail.shouldSwap = false;
      return;
    }
    var fromBottom = list.scrollHeight - list.scrollTop;
    queueMicrotask(function () {
      if (sentinel.isConnected) return;  // Not swapped after all.
      list.scrollTop = list.scrollHeight - fromBottom;
      olderPages += 1;
      seekStep();
    });
  });

  // Replacing the whole list (a version switch, the resync after a reconnect,
  // the loader that fetches it over HTTP when it is too large for a frame)
  // brings back the latest page only. The reader stays where they were: at
  // the end if they were there, else at the bubble at the top of the view;
  // if that is on an older page, those pages load again (no more of them
  // than were loaded before). A version switch replaces the list twice (the
  // broadcast to every tab, and the answer to the click): the second
  // replacement starts the search for the same bubble again.
  var seeking = null;  // {id, offset, atEnd, budget, pages}: where to bring the reader back, pages it may load

  function readingPlace(list) {
    var top = list.getBoundingClientRect().top;
    var atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    var bubbles = list.querySelectorAll(":scope > article");
    for (var i = 0; i < bubbles.length; i++) {
      var box = bubbles[i].getBoundingClientRect();
      if (box.bottom > top) return { id: bubbles[i].id, offset: box.top - top, atEnd: atEnd };
    }
    return null;
  }

  function seekStep() {
    var list = messageList();
    if (!list) seeking = null;  // The conversation left the page.
    if (!seeking || list.querySelector(":scope > .messages-loading")) return;  // Coming over HTTP: its swap calls back.
    var bubble = document.getElementById(seeking.id);
    if (seeking.atEnd || bubble) {
      if (seeking.atEnd) scrollToEnd(true);
      else list.scrollTop += bubble.getBoundingClientRect().top - list.getBoundingClientRect().top - seeking.offset;
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

  document.addEventListener("DOMContentLoaded", function () {
    addCodeCopyButtons(document);
    refreshStop();
    // A link to a bubble (a search hit: ?around=...#message-<id>) opens at that bubble, else at the end.
    var linked = location.hash && document.getElementById(location.hash.slice(1));
    if (linked && linked.parentElement === messageList()) linked.scrollIntoView({ block: "start" });
    else scrollToEnd(true);
  });
})();
