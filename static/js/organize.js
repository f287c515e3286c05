// Sidebar: drag a conversation onto a folder to file it there (the same request as the "Folder" menu's).
// The server answers with HX-Refresh, so the sidebar is shown again as it now is.
(function () {
  "use strict";

  var dragged = null;

  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest ? event.target.closest(".conversation-item[data-folder-url]") : null;
    if (!item) return;
    dragged = item;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.id);
  });

  document.addEventListener("dragend", function () {
    dragged = null;
    document.querySelectorAll(".folder-group.drop-target").forEach(function (folder) {
      folder.classList.remove("drop-target");
    });
  });

  function folderAt(event) {
    return event.target.closest ? event.target.closest(".folder-group[data-folder-id]") : null;
  }

  document.addEventListener("dragover", function (event) {
    var folder = folderAt(event);
    if (!dragged || !folder) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    folder.classList.add("drop-target");
  });

  document.addEventListener("dragleave", function (event) {
    var folder = folderAt(event);
    if (folder && !folder.contains(event.relatedTarget)) folder.classList.remove("drop-target");
  });

  document.addEventListener("drop", function (event) {
    var folder = folderAt(event);
    if (!dragged || !folder) return;
    event.preventDefault();
    htmx.ajax("POST", dragged.dataset.folderUrl, {
      source: dragged,
      values: {folder: folder.dataset.folderId},
      swap: "none",
    });
  });
})();
