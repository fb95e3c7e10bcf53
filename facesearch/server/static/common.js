// Shared by every page: calls to the API with the saved key, errors in one line, drawing boxes.
"use strict";

const KEY_STORE = "facesearch.key";

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// fetch() of /api/v1/... with the key; JSON back, or an ApiError carrying the server's one line.
async function api(path, options = {}) {
  const response = await fetch("/api/v1" + path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401 || response.status === 403) showKeyBar();
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { const body = await response.json(); if (body && body.error) message = body.error; } catch (e) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : response.blob();
}

// An image from the API as an object URL (an <img src> cannot send the key).
async function apiImage(path) {
  return URL.createObjectURL(await api(path));
}

function showError(message) {
  const box = document.getElementById("error");
  if (!box) return;
  box.textContent = message || "";
  box.classList.toggle("shown", Boolean(message));
}

function showNotice(message) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = message || "";
  box.classList.toggle("shown", Boolean(message));
}

function showKeyBar() {
  const bar = document.getElementById("keybar");
  if (bar) bar.classList.add("shown");
}

function setUpKeyBar() {
  const bar = document.getElementById("keybar");
  if (!bar) return;
  const input = bar.querySelector("input");
  input.value = apiKey();
  bar.querySelector("button").addEventListener("click", () => {
    localStorage.setItem(KEY_STORE, input.value.trim());
    bar.classList.remove("shown");
    showError("");
    document.dispatchEvent(new Event("facesearch:key"));
  });
}

function markNav() {
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === location.pathname) a.classList.add("active");
  }
}

// A drop zone that also opens a file picker when clicked; calls onFiles(FileList).
function dropZone(element, onFiles, { picker = null } = {}) {
  element.addEventListener("dragover", (e) => { e.preventDefault(); element.classList.add("over"); });
  element.addEventListener("dragleave", () => element.classList.remove("over"));
  element.addEventListener("drop", (e) => {
    e.preventDefault();
    element.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles(e.dataTransfer.files);
  });
  if (picker) {
    // The picker may sit inside the zone: its own click bubbles up here and must not re-open it.
    element.addEventListener("click", (e) => { if (e.target !== picker && !e.target.closest("button, input, select")) picker.click(); });
    picker.addEventListener("change", () => { if (picker.files.length) onFiles(picker.files); picker.value = ""; });
  }
}

const KNOWN = "#2ecc40", UNKNOWN = "#ff4136";

// Boxes and "name 0.79" labels of faces (box = [x, y, w, h] in image pixels) on a 2-D context,
// scaled by `scale` (canvas pixels per image pixel).
function drawFaces(ctx, faces, scale) {
  const line = Math.max(2, Math.round(3 * Math.max(ctx.canvas.width, ctx.canvas.height) / 1000));
  const font = Math.max(13, Math.round(18 * Math.max(ctx.canvas.width, ctx.canvas.height) / 1000));
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const face of faces) {
    const [x, y, w, h] = face.box.map((v) => v * scale);
    const colour = face.identity ? KNOWN : UNKNOWN;
    ctx.strokeStyle = colour;
    ctx.lineWidth = line;
    ctx.strokeRect(x, y, w, h);
    const label = `${face.identity || "Unknown"} ${face.similarity.toFixed(2)}`;
    const width = ctx.measureText(label).width + 10;
    const top = Math.max(0, y - font - 8);
    ctx.fillStyle = colour;
    ctx.fillRect(x - line / 2, top, width, font + 8);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x + 5 - line / 2, top + 4);
  }
}

document.addEventListener("DOMContentLoaded", () => { markNav(); setUpKeyBar(); });
