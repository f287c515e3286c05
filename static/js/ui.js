// The page's frame, on every page: the colour theme switch and the phone drawer.
//
// Both work without this script (a form that posts and reloads; a checkbox
// toggled by its labels); this script makes the theme apply at once and lets
// the keyboard open and close the drawer.
(function () {
  "use strict";

  // Theme: a form posting `theme` to the server, which saves it (accounts/theme.py).
  // The server's answer is a redirect that nobody needs to follow: the page
  // changes its own data-theme, so nothing reloads and nothing typed is lost.
  function applyTheme(theme) {
    var root = document.documentElement;
    root.dataset.theme = theme;
    var scheme = document.querySelector('meta[name="color-scheme"]');
    if (scheme) scheme.content = theme === "system" ? "light dark" : theme;
    document.querySelectorAll(".theme-switch button[name=theme]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.value === theme));
    });
    document.querySelectorAll('.theme-choices input[name=theme]').forEach(function (input) {
      input.checked = input.value === theme;
    });
  }

  function saveTheme(form, theme) {
    var data = new FormData(form);
    data.set("theme", theme);
    var previous = document.documentElement.dataset.theme;
    applyTheme(theme);
    fetch(form.action, {method: "POST", body: data, credentials: "same-origin", redirect: "manual"})
      .then(function (response) {
        // A redirect is the success answer (opaque here); anything else failed: show the old theme again.
        if (response.type !== "opaqueredirect" && !response.ok) applyTheme(previous);
      })
      .catch(function () { applyTheme(previous); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest(".theme-form");
    if (!form) return;
    var submitter = event.submitter;
    var theme = submitter && submitter.name === "theme" ? submitter.value : null;
    if (!theme) {
      var checked = form.querySelector("input[name=theme]:checked");
      theme = checked && checked.value;
    }
    if (!theme) return;
    event.preventDefault();
    saveTheme(form, theme);
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.name === "theme" && input.type === "radio" && input.closest(".theme-form")) {
      saveTheme(input.closest(".theme-form"), input.value);
    }
  });

  // Drawer (phones): #sidebar-toggle is a hidden checkbox; its labels are the ☰, ✕ and backdrop.
  function drawer() { return document.getElementById("sidebar-toggle"); }

  function setDrawer(open) {
    var toggle = drawer();
    if (!toggle || toggle.checked === open) return;
    toggle.checked = open;
    syncDrawer();
    if (open) {
      var first = document.querySelector("#sidebar .sidebar-close");
      if (first) first.focus();
    } else {
      var opener = document.querySelector(".sidebar-toggle-button");
      if (opener && opener.offsetParent !== null) opener.focus();
    }
  }

  function syncDrawer() {
    var toggle = drawer();
    var opener = document.querySelector(".sidebar-toggle-button");
    if (toggle && opener) opener.setAttribute("aria-expanded", String(toggle.checked));
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "sidebar-toggle") syncDrawer();
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if ((event.key === "Enter" || event.key === " ") && target.matches &&
        target.matches(".sidebar-toggle-button, .sidebar-close")) {
      event.preventDefault();
      setDrawer(!drawer().checked);
    } else if (event.key === "Escape" && drawer() && drawer().checked) {
      setDrawer(false);
    }
  });

  // Opening a chat, a new chat or a search result from the drawer closes it.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#sidebar a");
    if (link && drawer() && drawer().checked) {
      drawer().checked = false;
      syncDrawer();
    }
  });

  document.addEventListener("DOMContentLoaded", syncDrawer);
})();
