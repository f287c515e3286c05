// Chat page behaviour: Enter sends, Shift+Enter adds a line, one idempotency key
// per send, the composer clears after a send, Stop shows while a reply streams,
// copy buttons on messages and code blocks, editing the last question.
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

  document.addEventListener("htmx:wsAfterMessage", function () {
    refreshStop();
    scrollToEnd(false);
  });

  // On every (re)open, ask the server to bring the page up to date: replies shown
  // as streaming that finished meanwhile, and after a reconnect everything.
  var socketOpenedBefore = false;
  document.addEventListener("htmx:wsOpen", function (event) {
    var streaming = Array.prototype.map.call(
      document.querySelectorAll('#messages article[data-status="streaming"]'),
      function (article) { return article.dataset.messageId; }
    );
    event.detail.socketWrapper.send(JSON.stringify({ action: "sync", streaming: streaming, full: socketOpenedBefore }));
    socketOpenedBefore = true;
  });

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

  document.addEventListener("DOMContentLoaded", function () {
    addCodeCopyButtons(document);
    refreshStop();
    scrollToEnd(true);
  });
})();
