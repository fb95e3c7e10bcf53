// The gallery page: each identity with a face thumbnail and counts; rename, remove, remove one
// face; enroll by dropping photos on a person or on "New person".
"use strict";

let generation = 0;

async function refresh() {
  try {
    const [people, info] = await Promise.all([api("/identities"), api("/info")]);
    generation = info.generation;
    const faces = people.reduce((n, p) => n + p.faces, 0);
    document.getElementById("summary").textContent = people.length
      ? `${people.length} ${people.length === 1 ? "person" : "people"}, ${faces} face${faces === 1 ? "" : "s"}. `
        + "Drop photos on a person to add them, or on “New person” to enroll someone."
      : "Nobody is enrolled yet. Type a name under “New person” and drop photos of them there.";
    const grid = document.getElementById("grid");
    for (const old of grid.querySelectorAll(".person")) old.remove();
    for (const person of people) grid.append(card(person));
  } catch (e) {
    showError(e.message);
  }
}

function card(person) {
  const node = document.getElementById("card").content.firstElementChild.cloneNode(true);
  node.dataset.name = person.name;
  node.querySelector(".name").textContent = person.name;
  node.querySelector(".counts").textContent =
    `${person.faces} face${person.faces === 1 ? "" : "s"} · ${person.images} photo${person.images === 1 ? "" : "s"}`;
  const img = node.querySelector("img.thumb");
  img.alt = person.name;
  apiImage(`/identities/${encodeURIComponent(person.name)}/thumbnail?g=${generation}`)
    .then((url) => { img.src = url; })
    .catch(() => { img.replaceWith(initials(person.name)); });
  const picker = node.querySelector(".picker");
  node.querySelector(".add").addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => { if (picker.files.length) enroll(person.name, picker.files); picker.value = ""; });
  dropZone(node, (files) => enroll(person.name, files));
  node.querySelector(".rename-button").addEventListener("click", () => startRename(node, person.name));
  const remove = node.querySelector(".remove");
  remove.addEventListener("click", async () => {
    if (!remove.classList.contains("confirm")) {   // a second click confirms
      remove.classList.add("confirm");
      remove.textContent = "Really remove?";
      setTimeout(() => { remove.classList.remove("confirm"); remove.textContent = "Remove"; }, 4000);
      return;
    }
    await change(() => api(`/identities/${encodeURIComponent(person.name)}`, { method: "DELETE" }),
                 (r) => `Removed ${r.removed} (${r.faces} face${r.faces === 1 ? "" : "s"}).`);
  });
  node.querySelector(".show-faces").addEventListener("click", () => toggleFaces(node, person.name));
  return node;
}

function initials(name) {
  const div = document.createElement("div");
  div.className = "thumb";
  div.textContent = name.split(/[\s_]+/).map((w) => w[0] || "").join("").slice(0, 2).toUpperCase();
  return div;
}

function startRename(node, name) {
  const label = node.querySelector(".name");
  const form = document.createElement("div");
  form.className = "rename";
  const input = document.createElement("input");
  input.type = "text";
  input.value = name;
  input.setAttribute("aria-label", "New name");
  const save = document.createElement("button");
  save.textContent = "Save";
  save.className = "primary";
  form.append(input, save);
  label.replaceWith(form);
  input.focus();
  input.select();
  const submit = () => {
    const to = input.value.trim();
    if (!to || to === name) { form.replaceWith(label); return; }
    change(() => api(`/identities/${encodeURIComponent(name)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: to }) }),
      (r) => `Renamed ${r.renamed} to ${r.to}.`);
  };
  save.addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); if (e.key === "Escape") form.replaceWith(label); });
}

async function toggleFaces(node, name) {
  const list = node.querySelector(".facelist");
  if (!list.hidden) { list.hidden = true; return; }
  list.replaceChildren();
  list.hidden = false;
  try {
    for (const face of await api(`/identities/${encodeURIComponent(name)}/faces`)) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = `${name}, face ${face.id} (${face.photo})`;
      img.title = face.photo;
      apiImage(`/faces/${face.id}/thumbnail?size=104&g=${generation}`).then((url) => { img.src = url; }).catch(() => {});
      const remove = document.createElement("button");
      remove.textContent = "×";
      remove.title = "Remove this face";
      remove.addEventListener("click", () => change(() => api(`/faces/${face.id}`, { method: "DELETE" }),
        (r) => `Removed a face of ${r.identity}` + (r.faces_left ? ` (${r.faces_left} left).` : "; nobody left under that name.")));
      figure.append(img, remove);
      list.append(figure);
    }
  } catch (e) {
    showError(e.message);
  }
}

async function change(call, describe) {
  showError("");
  try {
    showNotice(describe(await call()));
  } catch (e) {
    showNotice("");
    showError(e.message);
  }
  await refresh();
}

async function enroll(name, files) {
  name = (name || "").trim();
  if (!name) { showError("Type the new person's name first."); return; }
  const form = new FormData();
  for (const file of files) form.append("photo", file, file.name);
  showError("");
  showNotice(`Enrolling ${files.length} photo${files.length === 1 ? "" : "s"} as ${name}…`);
  await change(() => api(`/identities/${encodeURIComponent(name)}/photos`, { method: "POST", body: form }), describeEnrollment);
  document.getElementById("new-name").value = "";
}

function describeEnrollment(r) {
  const parts = [`Enrolled ${r.enrolled.length} face${r.enrolled.length === 1 ? "" : "s"}` +
                 (r.identities.length ? ` of ${r.identities.join(", ")}` : "") + "."];
  if (r.duplicates.length) parts.push(`${r.duplicates.length} already enrolled (as ${r.duplicates.map((d) => d.identity).join(", ")}).`);
  if (r.no_face.length) parts.push(`No face found in ${r.no_face.join(", ")}.`);
  if (r.multiple_faces.length) parts.push(`Several faces in ${r.multiple_faces.map((m) => m.path).join(", ")}: kept the largest.`);
  return parts.join(" ");
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("new-person");
  const picker = document.getElementById("new-picker");
  const nameInput = document.getElementById("new-name");
  dropZone(box, (files) => enroll(nameInput.value, files));
  document.getElementById("new-pick").addEventListener("click", () => {
    if (!nameInput.value.trim()) { showError("Type the new person's name first."); nameInput.focus(); return; }
    picker.click();
  });
  picker.addEventListener("change", () => { if (picker.files.length) enroll(nameInput.value, picker.files); picker.value = ""; });
  document.addEventListener("facesearch:key", refresh);
  refresh();
});
