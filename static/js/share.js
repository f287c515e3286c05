// Share panel: "Copy link" copies the share link's URL from its read-only field.
// The URL is read from the field's value and written to the clipboard as text only.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy-value]") : null;
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy-value"));
    if (!field) return;
    field.select();
    var label = button.textContent;
    function done() {
      button.textContent = gettext("Copied");
      setTimeout(function () { button.textContent = label; }, 1200);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done);
    } else {
      document.execCommand("copy");
      done();
    }
  });
})();
