// Composer attachments: images and documents picked, pasted or dropped are uploaded
// (POST /files/) and listed above the composer; their ids go with the message in the
// hidden "attachments" field; images are refused at once for a model that reads none
// (the server refuses them too). The model picker itself is plain htmx.
(function () {
  "use strict";

  function composer() { return document.getElementById("composer"); }
  function chips() { return document.getElementById("composer-attachments"); }

  function alertText(text) {
    var alert = document.getElementById("composer-alert");
    if (alert) alert.textContent = text;
  }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (error) { return ""; }
  }

  function visionModel() {
    var picker = document.getElementById("model-picker");
    return { vision: !picker || picker.dataset.vision === "true", name: picker ? picker.dataset.modelName : "" };
  }

  function idsField() { var form = composer(); return form && form.querySelector('input[name="attachments"]'); }

  function setIds() {
    var field = idsField();
    if (!field) return;
    var ids = [];
    chips().querySelectorAll("li[data-attachment-id]").forEach(function (li) { ids.push(li.dataset.attachmentId); });
    field.value = ids.join(",");
  }

  function sizeText(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " B";
  }

  function isImage(file) { return /^image\/(png|jpeg|webp|gif)$/.test(file.type); }

  function upload(file) {
    var form = composer();
    if (!form || !chips()) return;
    var model = visionModel();
    if (isImage(file) && !model.vision) {
      alertText(interpolate(gettext("%s does not accept images. Switch to a model that does, or attach a document."), [model.name]));
      return;
    }
    var li = document.createElement("li");
    li.className = "attachment attachment-uploading";
    li.textContent = interpolate(gettext("Uploading %s…"), [file.name]);
    chips().appendChild(li);
    var data = new FormData();
    data.append("file", file, file.name);
    fetch(form.dataset.uploadUrl, {
      method: "POST", body: data, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        li.remove();
        alertText(interpolate(gettext("%(name)s was not attached: %(error)s"), { name: file.name, error: result.body.error || "" }, true));
        return;
      }
      alertText("");
      fill(li, result.body);
      setIds();
    }).catch(function () {
      li.remove();
      alertText(interpolate(gettext("%s could not be uploaded. Check your connection and try again."), [file.name]));
    });
  }

  function fill(li, attachment) {
    li.className = "attachment attachment-" + attachment.kind;
    li.dataset.attachmentId = attachment.id;
    li.textContent = "";
    if (attachment.kind === "image") {
      var img = document.createElement("img");
      img.src = attachment.url;
      img.alt = attachment.name;
      li.appendChild(img);
    } else {
      var name = document.createElement("span");
      name.className = "attachment-name";
      name.textContent = "📄 " + attachment.name;
      li.appendChild(name);
    }
    var note = document.createElement("span");
    note.className = "muted attachment-size";
    note.textContent = " " + sizeText(attachment.size_bytes);
    if (attachment.text_cut) {
      note.textContent += " · " + interpolate(
        gettext("too long: only its first %s characters will be sent"), [attachment.chars.toLocaleString()]);
      note.classList.add("attachment-cut");
    }
    li.appendChild(note);
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link-button attachment-remove";
    remove.title = gettext("Remove");
    remove.setAttribute("aria-label", interpolate(gettext("Remove %s"), [attachment.name]));
    remove.textContent = "×";
    remove.addEventListener("click", function () {
      li.remove();
      setIds();
      fetch(attachment.url + "remove/", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
      });
    });
    li.appendChild(remove);
  }

  function uploadAll(files) { Array.prototype.forEach.call(files, upload); }

  document.addEventListener("change", function (event) {
    if (event.target.id !== "attach-input") return;
    uploadAll(event.target.files);
    event.target.value = "";
  });

  document.addEventListener("paste", function (event) {
    if (!event.target.closest || !event.target.closest("#composer")) return;
    var files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) {
      event.preventDefault();
      uploadAll(files);
    }
  });

  document.addEventListener("dragover", function (event) {
    if (event.target.closest && event.target.closest(".composer-area")) event.preventDefault();
  });

  document.addEventListener("drop", function (event) {
    if (!event.target.closest || !event.target.closest(".composer-area")) return;
    if (event.dataTransfer && event.dataTransfer.files.length) {
      event.preventDefault();
      uploadAll(event.dataTransfer.files);
    }
  });

  // Taken by the server: the files went with the message (chat.js empties the text area then;
  // a refused message keeps both).
  document.addEventListener("chat:accepted", function () {
    if (!chips()) return;
    chips().textContent = "";
    setIds();
  });

  // Switched to a model without vision while images wait to be sent.
  document.addEventListener("htmx:afterSwap", function () {
    var list = chips();
    if (list && list.querySelector(".attachment-image") && !visionModel().vision) {
      alertText(interpolate(gettext("%s does not accept images: remove them or switch back."), [visionModel().name]));
    }
  });
})();
