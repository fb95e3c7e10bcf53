// The live page: camera frames (getUserMedia) go over a WebSocket to /api/v1/live one at a time;
// the boxes and names that come back are drawn over the video. A frame that arrives while the
// server is still answering the previous one is skipped, so the picture never lags behind.
"use strict";

const SEND_SIDE = 640;   // frames are scaled down to this longer side before sending

let stream = null, socket = null, busy = false, running = false;
let sent = 0, dropped = 0, answered = [], lastFrameTime = -1;
const grab = document.createElement("canvas");

async function start() {
  showError("");
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    showError(`The camera cannot be used: ${e.message}`);
    return;
  }
  const video = document.getElementById("video");
  video.srcObject = stream;
  await video.play();
  document.getElementById("stage").hidden = false;
  document.getElementById("start").disabled = true;
  document.getElementById("stop").disabled = false;
  connect();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("open", () => {
    const threshold = document.getElementById("threshold").value;
    socket.send(JSON.stringify({ key: apiKey() || null, top_k: 3,
                                 threshold: threshold === "" ? null : Number(threshold) }));
  });
  socket.addEventListener("message", (event) => onAnswer(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (event.code === 1008) showKeyBar();
    running = false;
    busy = false;
  });
  socket.addEventListener("error", () => showError("The connection to the server was lost."));
}

function onAnswer(answer) {
  if (answer.ready) { running = true; busy = false; tick(); return; }
  busy = false;
  if (answer.error) {
    showError(answer.error);
    if (!running) showKeyBar();
    return;
  }
  showError("");
  const now = performance.now();
  answered.push(now);
  answered = answered.filter((t) => now - t < 3000);
  document.getElementById("fps").textContent = (answered.length / 3).toFixed(1);
  document.getElementById("ms").textContent = Math.round(answer.ms);
  draw(answer);
}

function draw(answer) {
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  drawFaces(ctx, answer.faces, video.videoWidth / answer.width);
  const present = document.getElementById("present");
  present.replaceChildren(...answer.faces.map((face) => {
    const tag = document.createElement("span");
    tag.className = "live-name" + (face.identity ? "" : " unknown");
    tag.textContent = `${face.identity || "Unknown"} ${face.similarity.toFixed(2)}`;
    return tag;
  }));
}

// Called for every new video frame: send it if the server is free, else count it as skipped.
function tick() {
  if (!running) return;
  const video = document.getElementById("video");
  if (video.readyState >= 2 && video.currentTime !== lastFrameTime) {
    lastFrameTime = video.currentTime;
    if (busy) {
      dropped += 1;
      document.getElementById("dropped").textContent = dropped;
    } else {
      send(video);
    }
  }
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(tick);
  else requestAnimationFrame(tick);
}

function send(video) {
  const scale = Math.min(1, SEND_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  busy = true;
  grab.toBlob((blob) => {
    if (!blob || !socket || socket.readyState !== WebSocket.OPEN) { busy = false; return; }
    blob.arrayBuffer().then((buffer) => {
      socket.send(buffer);
      sent += 1;
      document.getElementById("sent").textContent = sent;
    });
  }, "image/jpeg", 0.85);
}

function stop() {
  running = false;
  if (socket) socket.close();
  if (stream) for (const track of stream.getTracks()) track.stop();
  socket = stream = null;
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("start").addEventListener("click", start);
  document.getElementById("stop").addEventListener("click", stop);
  document.addEventListener("facesearch:key", () => { if (stream) { if (socket) socket.close(); connect(); } });
});
