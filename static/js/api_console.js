/* The API page: copy buttons, and the live console that calls the real /v1/chat/completions.
 *
 * The console asks the page for a short-lived key of the user's (a POST with the page's CSRF token),
 * then sends to /v1 with only that key: no cookie goes to /v1 (credentials: "omit"). Each Server-Sent
 * Event is shown raw as it arrives, and its delta is added to the reply beside it. Text goes in with
 * textContent only, never as HTML.
 */
(function () {
  "use strict";

  // A key is fetched again this long before it expires.
  var KEY_MARGIN_MS = 60 * 1000;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function setUpCopyButtons(root) {
    if (!navigator.clipboard) return;
    root.querySelectorAll("[data-copy]:not([data-copy-ready])").forEach(function (element) {
      element.setAttribute("data-copy-ready", "");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button copy-button";
      button.textContent = gettext("Copy");
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(element.textContent).then(function () {
          button.textContent = gettext("Copied");
        });
      });
      element.insertAdjacentElement("afterend", button);
    });
  }

  function setUpConsole(form) {
    if (form.hasAttribute("data-ready")) return;
    form.setAttribute("data-ready", "");
    var eventsPane = form.querySelector("#api-console-events");
    var replyPane = form.querySelector("#api-console-reply");
    var status = form.querySelector("#api-console-status");
    var sendButton = form.querySelector("#api-console-send");
    var stopButton = form.querySelector("#api-console-stop");
    var key = null;
    var keyExpiresAt = 0;
    var controller = null;

    function showEvent(text) {
      eventsPane.textContent += text + "\n\n";
      eventsPane.scrollTop = eventsPane.scrollHeight;
    }

    function showError(message) {
      replyPane.classList.add("error");
      status.textContent = message;
    }

    function consoleKey() {
      if (key && Date.now() < keyExpiresAt - KEY_MARGIN_MS) return Promise.resolve(key);
      return fetch(form.dataset.keyUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() },
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
          key = body.key;
          keyExpiresAt = Date.parse(body.expires_at);
          return key;
        });
      });
    }

    function handleEvent(raw) {
      showEvent(raw);
      raw.split("\n").forEach(function (line) {
        if (line.indexOf("data: ") !== 0) return;
        var data = line.slice(6);
        if (data === "[DONE]") return;
        var chunk = JSON.parse(data);
        if (chunk.error) {
          showError(chunk.error.message);
        } else if (chunk.choices && chunk.choices.length) {
          var choice = chunk.choices[0];
          if (choice.delta && choice.delta.content) replyPane.textContent += choice.delta.content;
          if (choice.finish_reason) {
            status.textContent = interpolate(gettext("Finished: %s."), [choice.finish_reason]);
          }
        } else if (chunk.usage) {
          status.textContent += " " + interpolate(gettext("%s prompt and %s completion tokens."), [
            chunk.usage.prompt_tokens,
            chunk.usage.completion_tokens,
          ]);
        }
      });
    }

    function readEvents(response) {
      var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "";
      function next() {
        return reader.read().then(function (result) {
          if (result.done) return;
          buffer += result.value;
          var end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return next();
        });
      }
      return next();
    }

    function send(message) {
      controller = new AbortController();
      return consoleKey()
        .then(function (consoleKeyValue) {
          return fetch(form.dataset.endpoint, {
            method: "POST",
            credentials: "omit",
            signal: controller.signal,
            headers: { Authorization: "Bearer " + consoleKeyValue, "Content-Type": "application/json" },
            body: JSON.stringify({
              model: form.elements.model.value,
              messages: [{ role: "user", content: message }],
              stream: true,
              stream_options: { include_usage: true },
              store: form.elements.store.checked,
            }),
          });
        })
        .then(function (response) {
          var conversation = response.headers.get("X-Conversation-Id");
          showEvent("HTTP " + response.status + (conversation ? "  X-Conversation-Id: " + conversation : ""));
          if (!response.ok) {
            return response.json().then(function (body) {
              showEvent(JSON.stringify(body));
              showError(body.error.message);
            });
          }
          return readEvents(response);
        });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var message = form.elements.message.value.trim();
      if (!message || controller) return;
      eventsPane.textContent = "";
      replyPane.textContent = "";
      replyPane.classList.remove("error");
      status.textContent = gettext("Sending…");
      sendButton.disabled = true;
      stopButton.hidden = false;
      send(message)
        .catch(function (error) {
          if (error.name === "AbortError") {
            status.textContent = gettext("Stopped: the site stopped the reply and kept what was written.");
          } else {
            showError(error.message);
          }
        })
        .finally(function () {
          controller = null;
          sendButton.disabled = false;
          stopButton.hidden = true;
        });
    });

    stopButton.addEventListener("click", function () {
      if (controller) controller.abort();
    });
  }

  function init(root) {
    setUpCopyButtons(root);
    root.querySelectorAll("[data-api-console]").forEach(setUpConsole);
  }

  document.addEventListener("htmx:load", function (event) {
    init(event.target);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      init(document);
    });
  } else {
    init(document);
  }
})();
