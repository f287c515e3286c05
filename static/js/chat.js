// Chat page behaviour: Enter sends, Shift+Enter adds a line, one idempotency key
// per send, the composer clears after a send, Stop shows while a reply streams.
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

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail && event.detail.event && event.detail.event.code;
    var alert = document.getElementById("composer-alert");
    if (alert && code >= 4400 && code < 4500) {
      alert.textContent = event.detail.event.reason || "The connection was refused. Reload the page.";
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    refreshStop();
    scrollToEnd(true);
  });
})();
