// Progressive enhancement of the upload form: downscale in the browser, show a busy state and
// swap in the results without a full reload. Without JavaScript the plain form still posts.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  if (!form || !window.fetch || !window.FormData) return;
  var input = form.querySelector("input[type=file]");
  var busy = document.getElementById("busy");
  var results = document.getElementById("results");
  var drop = document.getElementById("drop-zone");
  var MAX_SIDE = 1024;

  function downscale(file) {
    // createImageBitmap honours EXIF orientation, so the photo stays upright after resizing.
    if (!window.createImageBitmap || !/^image\/(jpeg|png|webp)$/.test(file.type)) return Promise.resolve(file);
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
      var scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      if (scale === 1 && file.size < 1024 * 1024) return file;
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) { resolve(blob || file); }, "image/jpeg", 0.85);
      });
    }).catch(function () { return file; });  // let the server give the reason
  }

  function submit(file) {
    busy.hidden = false;
    form.setAttribute("aria-busy", "true");
    return downscale(file).then(function (blob) {
      var data = new FormData(form);
      data.set("image", blob, file.name || "photo.jpg");
      return fetch(form.action, { method: "POST", body: data, headers: { "X-Requested-With": "fetch" } });
    }).then(function (response) { return response.text(); })
      .then(function (html) { results.innerHTML = html; })
      .catch(function () { results.innerHTML = '<p class="error" role="alert">The upload failed; check your connection and try again.</p>'; })
      .finally(function () { busy.hidden = true; form.removeAttribute("aria-busy"); });
  }

  form.addEventListener("submit", function (event) {
    if (!input.files || !input.files[0]) return;
    event.preventDefault();
    submit(input.files[0]);
  });
  input.addEventListener("change", function () { if (input.files[0]) submit(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.remove("dragging"); });
  });
  drop.addEventListener("drop", function (e) { if (e.dataTransfer.files[0]) submit(e.dataTransfer.files[0]); });
  document.addEventListener("paste", function (e) {
    var item = Array.prototype.find.call(e.clipboardData.items, function (i) { return i.type.indexOf("image/") === 0; });
    if (item) submit(item.getAsFile());
  });
})();
