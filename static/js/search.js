// Progressive enhancement of the upload form (no build step, no library): downscale the photo in the
// browser, show a busy state and swap in the results without a full reload. Without JavaScript the
// plain form still posts and the server renders the whole page.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  if (!form || !window.fetch || !window.FormData || !window.Promise) return;
  var inputs = form.querySelectorAll("input[type=file]");
  var busy = document.getElementById("busy");
  var results = document.getElementById("results");
  var drop = document.getElementById("drop-zone");
  var controls = form.querySelectorAll(".button");
  // A 12-megapixel phone photo (~4 MB) becomes a 448 x 597 JPEG of some tens of KB. The server never
  // looks closer: the model sees 224 px (recognition/images.py decodes a larger JPEG at a reduced
  // scale anyway) and colours are read at 96 px. A 1024-px photo, as this page sent before, was 2-3
  // times the bytes on the shopper's uplink and the server's decoding, for pixels thrown away.
  var SHORT_SIDE = 448;
  var KEEP_AS_IS_BYTES = 512 * 1024;
  var JPEG_QUALITY = 0.85;
  var running = false;
  var queryPhotoUrl = null;
  var queryPhotoBlob = null;
  var sentPhoto = null;  // the photo of the upload under way
  var shownPhoto = null;  // the address of the photo whose results are shown: a refine shows it again

  form.classList.add("enhanced");

  function decode(file) {
    // Both paths apply the EXIF orientation, so a phone photo stays upright once it is redrawn.
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" });
    }
    return new Promise(function (resolve, reject) {
      var img = new Image();
      var url = URL.createObjectURL(file);
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("undecodable")); };
      img.src = url;
    });
  }

  function downscale(file) {
    // A photo in a format the server does not read (HEIC from an iPhone, AVIF, BMP) is redrawn as a
    // JPEG whenever this browser can decode it (Safari decodes HEIC, Chrome AVIF); anything it cannot
    // decode (a PDF, a HEIC on most desktops) goes up unchanged, and the server answers with the reason.
    // A GIF goes up as it is: redrawn, an animation would keep only its first frame anyway.
    var serverReads = /^image\/(jpeg|png|webp|gif)$/.test(file.type);
    if (file.type === "image/gif" || (file.type && !/^image\//.test(file.type))) return Promise.resolve(file);
    return decode(file).then(function (picture) {
      var width = picture.width, height = picture.height;
      var scale = Math.min(1, SHORT_SIDE / Math.min(width, height));
      if (serverReads && scale === 1 && file.size <= KEEP_AS_IS_BYTES) return file;
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(width * scale));
      canvas.height = Math.max(1, Math.round(height * scale));
      var context = canvas.getContext("2d");
      context.fillStyle = "#fff";  // JPEG has no transparency: flatten PNGs on white, not black
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.imageSmoothingQuality = "high";
      context.drawImage(picture, 0, 0, canvas.width, canvas.height);
      if (picture.close) picture.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          resolve(blob && (blob.size < file.size || !serverReads) ? blob : file);
        }, "image/jpeg", JPEG_QUALITY);
      });
    }).catch(function () { return file; });
  }

  function setBusy(on, message) {
    running = on;
    busy.textContent = message || "";
    busy.classList.toggle("working", on);
    results.setAttribute("aria-busy", on ? "true" : "false");
    form.setAttribute("aria-busy", on ? "true" : "false");
    Array.prototype.forEach.call(controls, function (c) { c.setAttribute("aria-disabled", on ? "true" : "false"); });
    Array.prototype.forEach.call(inputs, function (i) { i.disabled = on; });
    Array.prototype.forEach.call(results.querySelectorAll("form button"), function (b) { b.disabled = on; });
  }

  function queryPhotoAddress(blob) {
    // One address a photo, kept while the page lives: entries of the history show it again on Back
    // (a downscaled photo is some tens of KB).
    if (blob !== queryPhotoBlob) {
      queryPhotoBlob = blob;
      queryPhotoUrl = URL.createObjectURL(blob);
    }
    return queryPhotoUrl;
  }

  function placeQueryPhoto(url) {
    var slot = results.querySelector("[data-query-photo]");
    if (!slot || !url) return;
    var img = document.createElement("img");
    img.onerror = function () { img.remove(); };  // a photo of an earlier visit to the page is gone
    img.src = url;
    img.alt = "Your photo";
    slot.appendChild(img);
  }

  // Each set of results is an entry of the browser's history: Back steps out of a refine, and the
  // results are there again after a visit to an item page, whether or not the browser kept the page.
  // The version of what an entry holds: an entry written by an older script of the page is not restored.
  var STATE_VERSION = 2;

  // The results as an entry keeps them: without the shopper's photo, which a restore places from `photo`.
  function remember(push, photo) {
    var copy = results.cloneNode(true);
    Array.prototype.forEach.call(copy.querySelectorAll("[data-query-photo] img"), function (img) { img.remove(); });
    var state = { v: STATE_VERSION, results: copy.innerHTML, photo: photo || null };
    try {
      if (push) history.pushState(state, ""); else history.replaceState(state, "");
    } catch (e) {}  // a state the browser will not store: the page works as before, without the entry
  }

  function restore(state) {
    results.innerHTML = state.results;
    shownPhoto = state.photo || null;
    placeQueryPhoto(shownPhoto);
    showLook(results.querySelector("#look-slot[data-src]"));
  }

  function remembered(state) {
    return !!state && state.v === STATE_VERSION && typeof state.results === "string";
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    });
  }

  // Complete the look comes after the similar items, in a request of its own, so they wait for nothing.
  // If it fails, the section is simply left out: the results are already there.
  function showLook(slot) {
    if (!slot) return;
    fetch(slot.getAttribute("data-src"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) { slot.innerHTML = html; })
      .catch(function () {});
  }

  // Sends one request (a promise of the fetch response) and swaps its answer into the results.
  // `upload`: a new photo's results (else a refine of the results shown, beside the same photo).
  function show(request, upload) {
    setBusy(true, "Looking at your photo…");
    request.then(function (response) {
      // Only the app's results panel is shown, which it marks (its errors too: 400, 413, 429, 503); a
      // proxy's page or Django's own (a 403 when the CSRF cookie is gone) is never injected.
      if (!response.headers.get("X-Results-Partial")) {
        throw new Error(response.status === 403 ? "session" : "server error " + response.status);
      }
      return response.text().then(function (html) {
        results.innerHTML = html;
        if (response.ok) {
          if (upload) shownPhoto = sentPhoto ? queryPhotoAddress(sentPhoto) : null;
          remember(true, shownPhoto);  // before the look is in: a restore fetches it again
          placeQueryPhoto(shownPhoto);
        }
        // Only the similar items: the "Complete the look" cards below them are results too.
        var found = results.querySelectorAll("#similar-items > .result").length;
        setBusy(false, response.ok ? "Found " + found + " similar item" + (found === 1 ? "" : "s") + "." : "");
        showLook(results.querySelector("#look-slot[data-src]"));
      });
    }).catch(function (error) {
      results.innerHTML = '<p class="error" role="alert" id="results-title">' + (error.message === "session"
        ? "This page has expired. Reload it and send the photo again.</p>"
        : "Something went wrong sending the photo. Check your connection and try again.</p>");
      setBusy(false, "");
    }).then(function () {
      Array.prototype.forEach.call(inputs, function (i) { i.value = ""; });  // the same file can be chosen again
      results.focus({ preventScroll: true });
      // On a phone the results start below the fold: bring them up; on a desktop they are in view.
      if (results.getBoundingClientRect().top > window.innerHeight * 0.6) {
        var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
        results.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
      }
    });
  }

  function submit(file) {
    if (running || !file) return;
    show(downscale(file).then(function (blob) {
      sentPhoto = blob;
      var data = new FormData();
      data.append("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
      data.append("image", blob, blob === file ? (file.name || "photo") : "photo.jpg");
      return post(form.action, data);
    }), true);
  }

  if (remembered(history.state)) restore(history.state);
  else remember(false);
  window.addEventListener("popstate", function (event) {
    if (running) return;
    if (remembered(event.state)) restore(event.state);
    // An entry the page did not make (the skip link's #main, say) keeps the results it was made on, so
    // that Back from it steps out of the next refine, not into the same results again.
    else remember(false, shownPhoto);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = Array.prototype.filter.call(inputs, function (i) { return i.files && i.files[0]; })[0];
    if (chosen) submit(chosen.files[0]);
  });
  Array.prototype.forEach.call(inputs, function (input) {
    input.addEventListener("change", function () { if (input.files && input.files[0]) submit(input.files[0]); });
  });

  // Forms inside the results (such as "the same, but ..." filters) post the same way, without a reload.
  results.addEventListener("submit", function (event) {
    var inner = event.target;
    if (!inner || inner.tagName !== "FORM" || inner.method.toLowerCase() !== "post") return;
    // A second tap while the first refine loads is ignored: let through, it posted the plain form and
    // reloaded the whole page, without the shopper's photo.
    event.preventDefault();
    if (running) return;
    show(post(inner.action, new FormData(inner)), false);
  });

  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) { e.preventDefault(); drop.classList.add("dragging"); });
  });
  ["dragleave", "dragend", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("dragging"); });
  });
  // A photo dropped anywhere on the page is searched, rather than opened by the browser in place of the page.
  document.addEventListener("dragover", function (e) { e.preventDefault(); });
  document.addEventListener("drop", function (e) {
    e.preventDefault();
    var files = e.dataTransfer && e.dataTransfer.files;
    if (files && files[0]) submit(files[0]);
  });
  document.addEventListener("paste", function (e) {
    var items = (e.clipboardData && e.clipboardData.items) || [];
    var image = Array.prototype.find.call(items, function (i) { return i.kind === "file" && i.type.indexOf("image/") === 0; });
    if (image) { e.preventDefault(); submit(image.getAsFile()); }
  });
})();
