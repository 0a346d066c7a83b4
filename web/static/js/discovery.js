// Discovery page: start a scan, poll its progress, fill rows in, adopt one or all.
// Credentials typed here are sent to the server with each request and never stored by the page.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("discovery");
  if (!root) return;
  const msg = root.dataset;
  const csrf = msg.csrf;
  const scanForm = document.getElementById("scan-form");
  const bulkForm = document.getElementById("bulk-form");
  const progress = document.getElementById("scan-progress");
  const stateText = document.getElementById("scan-state");
  const errorBox = document.getElementById("scan-error");
  const tbody = document.querySelector("#scan-results tbody");
  const bulkResult = document.getElementById("bulk-result");
  let jobId = null;
  let devices = [];
  const adopted = new Map(); // xaddr -> result text

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : response.statusText;
      throw new Error(message);
    }
    return data;
  }

  function credentials() {
    return {
      username: document.getElementById("scan-username").value,
      password: document.getElementById("scan-password").value,
    };
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function render() {
    tbody.replaceChildren();
    for (const d of devices) {
      const tr = document.createElement("tr");
      tr.dataset.xaddr = d.xaddr;
      tr.className = "device-row status-row-" + d.status;
      const pic = document.createElement("td");
      if (d.status === "ok" && d.profiles.some((p) => p.snapshot)) {
        const img = document.createElement("img");
        img.width = 96;
        img.height = 54;
        img.alt = d.model || d.address;
        img.loading = "lazy";
        img.src = `/api/v1/discovery/${encodeURIComponent(jobId)}/snapshot?device=${d.index}`;
        pic.append(img);
      }
      tr.append(pic);
      tr.append(cell([d.manufacturer, d.model].filter(Boolean).join(" ") || d.name || ""));
      tr.append(cell(d.address));
      tr.append(cell(d.mac || "—"));
      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "status status-" + d.status;
      badge.textContent = d.status === "pending" ? msg.msgPending : d.status;
      status.append(badge);
      tr.append(status);
      tr.append(cell(d.message));
      const action = document.createElement("td");
      const done = adopted.get(d.xaddr);
      if (done) {
        action.append(done);
      } else if (d.known_camera_id) {
        const link = document.createElement("a");
        link.href = `/cameras/${d.known_camera_id}`;
        link.textContent = msg.msgKnown;
        action.append(link, " ");
      }
      if (!done && (d.status === "ok" || d.status === "clock_skew")) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "adopt-one";
        button.textContent = msg.msgAdopt;
        button.addEventListener("click", () => adoptOne(d, button));
        action.append(button);
      }
      tr.append(action);
      tbody.append(tr);
    }
  }

  function resultNode(result) {
    const link = document.createElement("a");
    link.href = `/cameras/${result.camera_id}`;
    link.className = "adopted";
    link.textContent = `${result.rebound ? msg.msgRebound : msg.msgAdopted}: ${result.name}`;
    return link;
  }

  async function adoptOne(device, button) {
    button.disabled = true;
    button.textContent = msg.msgAdopting;
    const site = document.getElementById("bulk-site").value;
    const body = {onvif_url: device.xaddr, ...credentials(),
                  set_clock: document.getElementById("bulk-set-clock").checked};
    if (site) body.site_id = Number(site);
    try {
      const data = await api("POST", "/api/v1/cameras", body);
      adopted.set(device.xaddr, resultNode({...data.adoption}));
      showError("");
    } catch (e) {
      showError(`${device.address}: ${e.message}`);
      button.disabled = false;
      button.textContent = msg.msgAdopt;
    }
    render();
  }

  async function poll() {
    if (!jobId) return;
    try {
      const job = await api("GET", `/api/v1/discovery/${encodeURIComponent(jobId)}`);
      devices = job.devices;
      progress.value = job.progress;
      const finished = ["done", "failed", "cancelled"].includes(job.state);
      stateText.textContent = `${finished ? msg.msgDone : msg.msgScanning} · ${msg.msgFound}: ${job.found}`;
      root.dataset.state = job.state;
      if (job.error) showError(job.error);
      render();
      if (!finished) setTimeout(poll, 400);
      else document.getElementById("scan-start").disabled = false;
    } catch (e) {
      showError(e.message);
      document.getElementById("scan-start").disabled = false;
    }
  }

  scanForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const targets = document.getElementById("scan-targets").value
      .split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
    const body = {targets, ...credentials(),
                  timeout_s: Number(document.getElementById("scan-timeout").value) || 3};
    document.getElementById("scan-start").disabled = true;
    progress.value = 0;
    root.dataset.state = "starting";
    adopted.clear();
    try {
      const data = await api("POST", "/api/v1/discovery", body);
      jobId = data.id;
      poll();
    } catch (e) {
      showError(e.message);
      document.getElementById("scan-start").disabled = false;
    }
  });

  bulkForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const creds = credentials();
    const username = document.getElementById("bulk-username").value || creds.username;
    const password = document.getElementById("bulk-password").value || creds.password;
    const xaddrs = devices.filter((d) => (d.status === "ok" || d.status === "clock_skew")
                                         && !adopted.has(d.xaddr)).map((d) => d.xaddr);
    if (!xaddrs.length) { bulkResult.textContent = msg.msgNothing; return; }
    const button = document.getElementById("bulk-adopt");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/v1/cameras/bulk", {
        site_id: Number(document.getElementById("bulk-site").value), username, password, xaddrs,
        set_clock: document.getElementById("bulk-set-clock").checked});
      for (const r of data.results) {
        if (r.ok) adopted.set(r.xaddr, resultNode(r));
      }
      const failures = data.results.filter((r) => !r.ok).map((r) => `${r.xaddr}: ${r.error}`);
      bulkResult.textContent = `${msg.msgAdopted}: ${data.adopted} · ${msg.msgFailed}: ${data.failed}`;
      showError(failures.join("\n"));
    } catch (e) {
      showError(e.message);
    }
    button.disabled = false;
    render();
  });
});
