// Exports page: queue an export (local times are converted on the server in the site's zone),
// then poll the API and keep each row's state, progress bar and download links up to date.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("exports");
  if (!root) return;
  const msg = root.dataset;
  const form = document.getElementById("export-form");
  const tbody = document.querySelector("#export-table tbody");
  const errorBox = document.getElementById("export-error");
  const message = document.getElementById("export-message");
  let timer = null;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: {"Content-Type": "application/json", "X-CSRF-Token": msg.csrf},
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error.message : response.statusText);
    }
    return data;
  }

  function stateText(state) {
    return msg["msg" + state.charAt(0).toUpperCase() + state.slice(1)] || state;
  }

  function link(href, text, cls) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.className = cls;
    return a;
  }

  function fmt(us) {
    return new Date(us / 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function renderRow(e) {
    let row = tbody.querySelector(`tr[data-export-id="${e.id}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.exportId = String(e.id);
      for (let i = 0; i < 7; i++) row.appendChild(document.createElement("td"));
      row.cells[4].appendChild(Object.assign(document.createElement("progress"),
        {className: "export-progress", max: 1, value: 0}));
      row.cells[1].className = "export-cameras";
      row.cells[3].className = "export-state";
      row.cells[5].className = "export-links";
      tbody.insertBefore(row, tbody.firstChild);
    }
    row.dataset.state = e.state;
    row.cells[0].textContent = String(e.id);
    row.cells[1].textContent = e.cameras.length ? e.cameras.map((c) => c.name).join(", ")
      : e.camera_ids.join(", ");
    row.cells[2].textContent = `${fmt(e.from_us)} – ${fmt(e.to_us)} UTC`;
    row.cells[3].textContent = stateText(e.state) + (e.error ? ` — ${e.error_text || e.error}` : "");
    row.cells[4].querySelector("progress").value = e.progress;
    const links = row.cells[5];
    if (e.state === "done" && !links.querySelector("a")) {
      links.textContent = "";
      links.appendChild(link(`/api/v1/exports/${e.id}/file`, msg.msgDownload, "export-download"));
      links.appendChild(document.createTextNode(" · "));
      links.appendChild(link(`/api/v1/exports/${e.id}/manifest`, msg.msgManifest,
                             "export-manifest"));
    }
    const actions = row.cells[6];
    const active = e.state === "queued" || e.state === "running";
    if (active && !actions.querySelector("button")) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "export-cancel";
      button.textContent = msg.msgCancel;
      button.addEventListener("click", async () => {
        try {
          renderRow(await api("POST", `/api/v1/exports/${e.id}/cancel`, {}));
        } catch (err) { showError(err.message); }
      });
      actions.appendChild(button);
    } else if (!active) {
      actions.textContent = "";
    }
  }

  async function refresh() {
    try {
      const data = await api("GET", "/api/v1/exports");
      for (const e of data.exports.slice().reverse()) renderRow(e);
      const busy = data.exports.some((e) => e.state === "queued" || e.state === "running");
      schedule(busy ? 500 : 5000);
    } catch (err) {
      showError(err.message);
      schedule(5000);
    }
  }

  function schedule(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const ids = [...form.querySelectorAll("input[name=camera_ids]:checked")].map((i) => Number(i.value));
    if (!ids.length) { showError(msg.msgNocamera); return; }
    try {
      const created = await api("POST", "/api/v1/exports", {
        camera_ids: ids,
        from_local: form.elements.from_local.value,
        to_local: form.elements.to_local.value,
      });
      message.textContent = `${msg.msgCreated}: #${created.id}`;
      await refresh();
    } catch (err) { showError(err.message); }
  });

  refresh();
});
