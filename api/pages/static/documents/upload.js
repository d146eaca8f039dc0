// Drag-and-drop upload per component with a progress bar; the file is sent as the raw body
// (streamed by the server), with its SHA-256 computed here when the browser can.
(function () {
  "use strict";
  var code = document.currentScript.dataset.code;

  function hex(buffer) {
    return Array.from(new Uint8Array(buffer)).map(function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  async function checksum(file) {
    // small enough files only: WebCrypto digests a whole buffer in memory
    if (!window.crypto || !crypto.subtle || file.size > 256 * 1024 * 1024) return null;
    return hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  }

  async function send(zone, file) {
    var out = zone.querySelector("output");
    var bar = zone.querySelector("progress");
    var params = new URLSearchParams({ file_name: file.name.replace(/[\\/]/g, "_") });
    if (zone.dataset.rescan === "1") {
      var reason = window.prompt("Lý do quét lại (bắt buộc):");
      if (!reason) { out.textContent = "Đã hủy: cần lý do quét lại."; return; }
      params.set("reason", reason);
    }
    out.textContent = "Đang tính mã kiểm tra…";
    var sha = await checksum(file);
    if (sha) params.set("sha256", sha);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/dossiers/" + encodeURIComponent(code) + "/documents/" +
      encodeURIComponent(zone.dataset.component) + "?" + params.toString());
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
      out.textContent = Math.round(e.loaded / 1048576) + " / " + Math.round(e.total / 1048576) + " MiB";
    };
    xhr.onload = function () {
      if (xhr.status === 201) {
        out.textContent = "Đã lưu. Đang tải lại…";
        window.location.reload();
      } else {
        var problem = {};
        try { problem = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
        out.textContent = "Lỗi: " + (problem.detail || xhr.status) +
          (problem.detail_en ? " / " + problem.detail_en : "");
      }
    };
    xhr.onerror = function () { out.textContent = "Lỗi mạng / network error"; };
    xhr.send(file);
  }

  document.querySelectorAll(".dropzone").forEach(function (zone) {
    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.style.borderColor = "#06c"; });
    zone.addEventListener("dragleave", function () { zone.style.borderColor = "#888"; });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.style.borderColor = "#888";
      if (e.dataTransfer.files.length) send(zone, e.dataTransfer.files[0]);
    });
    zone.querySelector("input[type=file]").addEventListener("change", function (e) {
      if (e.target.files.length) send(zone, e.target.files[0]);
    });
  });
})();
