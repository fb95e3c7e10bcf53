// The identify page: a dropped or picked photo goes to /api/v1/identify; boxes and names come back.
"use strict";

let lastFile = null;

async function identify(file) {
  lastFile = file;
  showError("");
  const status = document.getElementById("status");
  status.textContent = `Identifying ${file.name}…`;
  const form = new FormData();
  form.append("photo", file, file.name);
  const params = new URLSearchParams({ matcher: document.getElementById("matcher").value,
                                       top_k: document.getElementById("top_k").value || "3" });
  const threshold = document.getElementById("threshold").value;
  if (threshold !== "") params.set("threshold", threshold);
  const started = performance.now();
  try {
    const answer = await api("/identify?" + params, { method: "POST", body: form });
    const result = answer.results[0];
    await show(file, result);
    const n = result.faces.length;
    status.textContent = `${file.name}: ${n} face${n === 1 ? "" : "s"} in ${Math.round(performance.now() - started)} ms`;
  } catch (e) {
    status.textContent = "";
    showError(e.message);
  }
}

async function show(file, result) {
  // The server's boxes are in pixels of the photo as displayed (EXIF orientation applied),
  // which is how createImageBitmap draws it too.
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = document.getElementById("photo");
  const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  drawFaces(ctx, result.faces, scale);
  const list = document.getElementById("faces");
  list.replaceChildren();
  if (!result.faces.length) {
    const li = document.createElement("li");
    li.textContent = "No face found.";
    list.append(li);
  }
  for (const face of result.faces) list.append(faceItem(face));
  document.getElementById("result").hidden = false;
}

function faceItem(face) {
  const li = document.createElement("li");
  li.className = "face";
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = face.identity ? KNOWN : UNKNOWN;
  const name = document.createElement("span");
  name.className = "face-name " + (face.identity ? "known" : "unknown");
  name.textContent = face.identity || "Unknown";
  const sim = document.createElement("span");
  sim.className = "sim";
  sim.textContent = face.similarity.toFixed(2);
  const others = document.createElement("div");
  others.className = "candidates";
  const rest = face.identity ? face.candidates.slice(1) : face.candidates;
  others.textContent = rest.length ? (face.identity ? "next: " : "closest: ")
    + rest.map((c) => `${c.identity} ${c.similarity.toFixed(2)}`).join(", ") : "";
  li.append(swatch, name, sim, others);
  return li;
}

document.addEventListener("DOMContentLoaded", () => {
  dropZone(document.getElementById("drop"), (files) => identify(files[0]), { picker: document.getElementById("picker") });
  for (const id of ["matcher", "threshold", "top_k"]) {
    document.getElementById(id).addEventListener("change", () => { if (lastFile) identify(lastFile); });
  }
  document.addEventListener("facesearch:key", () => { if (lastFile) identify(lastFile); });
});
