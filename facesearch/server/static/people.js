// The people page: candidate people from `facesearch scan` (or photos scanned from here), a row of faces each; name one
// (or merge it into an enrolled person), split selected faces off, say a face is not someone,
// undo the last action, re-cluster.
"use strict";

async function refresh() {
  try {
    const [listing, history] = await Promise.all([api("/people?sample=12"), api("/people/history")]);
    document.getElementById("summary").textContent =
      `${listing.photos} photo${listing.photos === 1 ? "" : "s"} scanned, ${listing.faces} faces: ` +
      `${listing.clusters.length} candidate ${listing.clusters.length === 1 ? "person" : "people"}, ` +
      `${listing.waiting} unknown face${listing.waiting === 1 ? "" : "s"} waiting.`;
    const open = history.find((a) => !a.undone && ["name", "not", "split"].includes(a.kind));
    document.getElementById("last").textContent = open ? `Last: ${open.summary}` : "Nothing to undo.";
    document.getElementById("undo").disabled = !open;
    document.getElementById("clusters").replaceChildren(...listing.clusters.map(cluster));
    const people = await Promise.all(listing.people.map((p) => api(`/people/named/${encodeURIComponent(p.name)}/photos`)));
    document.getElementById("people").replaceChildren(...people.map(person));
  } catch (e) {
    showError(e.message);
  }
}

function faceFigure(id, title, { selectable = false, onNot = null } = {}) {
  const figure = document.createElement("figure");
  figure.dataset.face = id;
  const img = document.createElement("img");
  img.alt = title;
  img.title = title;
  apiImage(`/people/faces/${id}/thumbnail?size=104`).then((url) => { img.src = url; }).catch(() => {});
  figure.append(img);
  if (selectable) figure.addEventListener("click", () => figure.classList.toggle("selected"));
  if (onNot) {
    const button = document.createElement("button");
    button.textContent = "×";
    button.title = "Not this person";
    button.addEventListener("click", (e) => { e.stopPropagation(); onNot(); });
    figure.append(button);
  }
  return figure;
}

function cluster(c) {
  const node = document.getElementById("cluster").content.firstElementChild.cloneNode(true);
  node.dataset.cluster = c.id;
  node.querySelector(".title").textContent =
    `Person #${c.id} · ${c.faces} face${c.faces === 1 ? "" : "s"} in ${c.photos} photo${c.photos === 1 ? "" : "s"}`;
  const list = node.querySelector(".facelist");
  for (const id of c.sample) list.append(faceFigure(id, `face ${id}`, { selectable: true }));
  const input = node.querySelector(".person-name");
  if (c.suggestion) {   // most likely a part of someone already named: naming it alike merges it
    input.value = c.suggestion.name;
    node.querySelector(".title").textContent += ` · looks like ${c.suggestion.name}`;
  }
  const submit = () => {
    const name = input.value.trim();
    if (!name) { showError("Type a name first."); input.focus(); return; }
    change(() => post(`/people/clusters/${c.id}/name`, { name }),
           (r) => `Named person #${r.cluster} ${r.name}: ${r.named} face${r.named === 1 ? "" : "s"} enrolled` +
                  (r.created ? "." : " (merged)."));
  };
  node.querySelector(".name-button").addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  node.querySelector(".split-button").addEventListener("click", () => {
    const faces = [...list.querySelectorAll("figure.selected")].map((f) => Number(f.dataset.face));
    if (!faces.length) { showError("Click the faces to split off first."); return; }
    change(() => post(`/people/clusters/${c.id}/split`, { faces }),
           (r) => `Moved ${r.faces.length} face${r.faces.length === 1 ? "" : "s"} to person #${r.new_cluster}.`);
  });
  return node;
}

function person(p) {
  const node = document.createElement("div");
  node.className = "panel cluster named";
  node.dataset.name = p.name;
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = `${p.name} · ${p.photos.length} photo${p.photos.length === 1 ? "" : "s"}`;
  const list = document.createElement("div");
  list.className = "facelist";
  for (const photo of p.photos) {
    for (const f of photo.faces) {
      list.append(faceFigure(f.face, `${photo.path} ${JSON.stringify(f.box)}`, {
        onNot: () => change(() => post(`/people/faces/${f.face}/not`, { name: p.name }),
                            (r) => `Face ${r.face} is not ${r.name}.`) }));
    }
  }
  node.append(title, list);
  return node;
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: body === undefined ? undefined : JSON.stringify(body) });
}

// The notice comes after the page is redrawn, so what it says is what the page shows.
async function change(call, describe) {
  showError("");
  let message = "";
  try {
    message = describe(await call());
  } catch (e) {
    showError(e.message);
  }
  showNotice("");
  await refresh();
  showNotice(message);
}

async function scan(files) {
  const form = new FormData();
  for (const file of files) form.append("photo", file, file.name);
  showNotice(`Scanning ${files.length} photo${files.length === 1 ? "" : "s"}…`);
  await change(() => api("/people/scan", { method: "POST", body: form }), (r) => {
    const faces = r.scanned.reduce((n, p) => n + p.faces, 0);
    return `Scanned ${r.scanned.length} photo${r.scanned.length === 1 ? "" : "s"}: ${faces} face${faces === 1 ? "" : "s"}, ` +
           `${r.identified.length} identified, ${r.unknown} unknown` +
           (r.already_scanned.length ? `; ${r.already_scanned.length} already scanned.` : ".");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const picker = document.getElementById("scan-picker");
  document.getElementById("scan").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => { if (picker.files.length) scan(picker.files); picker.value = ""; });
  document.getElementById("undo").addEventListener("click", () =>
    change(() => post("/people/undo"), (r) => `Undone: ${r.summary}.`));
  document.getElementById("recluster").addEventListener("click", () =>
    change(() => post("/people/recluster"), (r) => `${r.clusters} candidate people, ${r.waiting} faces waiting.`));
  document.addEventListener("facesearch:key", refresh);
  refresh();
});
