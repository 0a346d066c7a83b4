// Discovery page: one credentials form, a scan (a subnet and/or typed addresses), its progress and
// rows, adopting one or all of what the scan found ready (with the credentials the scan was made
// with: the server keeps them with the scan), and adding one camera by ONVIF address or RTSP URL.
// Credentials typed here are sent to the server and never stored by the page.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("discovery");
  if (!root) return;
  const msg = root.dataset;
  const csrf = msg.csrf;
  const $ = (id) => document.getElementById(id);
  const progress = $("scan-progress");
  const stateText = $("scan-state");
  const errorBox = $("scan-error");
  const tbody = document.querySelector("#scan-results tbody");
  const bulkResult = $("bulk-result");
  let jobId = null;
  let devices = [];
  const adopted = new Map(); // xaddr -> result node

  // status code -> plain words (data-status-<code> on the root); unknown codes shown as they are
  const statusText = (code) => root.getAttribute("data-status-" + code) || code;

  function showError(lines) {
    const unique = [...new Set((Array.isArray(lines) ? lines : [lines]).filter(Boolean))];
    errorBox.textContent = unique.join("\n");
    errorBox.hidden = unique.length === 0;
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
    if (!response.ok) throw new Error(data && data.error ? data.error.message : response.statusText);
    return data;
  }

  const credentials = () => ({username: $("scan-username").value, password: $("scan-password").value});
  const siteId = () => ($("bulk-site").value ? Number($("bulk-site").value) : undefined);

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  const ready = (d) => d.status === "ok" || d.status === "clock_skew";

  function render() {
    tbody.replaceChildren();
    for (const d of devices) {
      const tr = document.createElement("tr");
      tr.dataset.xaddr = d.xaddr;
      tr.dataset.status = d.status;
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
      badge.textContent = statusText(d.status);
      status.append(badge);
      tr.append(status);
      // the message only when it says more than the status (never the same error twice): a
      // wrong password is the status itself, its technical detail a tooltip
      const quiet = ["ok", "pending", "auth_failed"].includes(d.status);
      if (quiet && d.message) badge.title = d.message;
      tr.append(cell(quiet ? "" : d.message));
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
      if (!done && ready(d)) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "adopt-one";
        button.textContent = msg.msgAdopt;
        button.addEventListener("click", () => adopt([d.index], button));
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

  // Adopt the devices at `indexes` (all ready ones when null) with the scan's own credentials.
  async function adopt(indexes, button) {
    if (!jobId) { showError(msg.msgScanFirst); return; }
    const wanted = devices.filter((d) => ready(d) && !adopted.has(d.xaddr)
                                         && (indexes === null || indexes.includes(d.index)));
    if (!wanted.length) { bulkResult.textContent = msg.msgNothing; return; }
    button.disabled = true;
    const label = button.textContent;
    button.textContent = msg.msgAdopting;
    try {
      const data = await api("POST", `/api/v1/discovery/${encodeURIComponent(jobId)}/adopt`, {
        site_id: siteId(), set_clock: $("bulk-set-clock").checked,
        devices: wanted.map((d) => d.index)});
      for (const r of data.results) if (r.ok) adopted.set(r.xaddr, resultNode(r));
      bulkResult.textContent = `${msg.msgAdopted}: ${data.adopted} · ${msg.msgFailed}: ${data.failed}`;
      // one line per kind of failure, naming the cameras it hit
      const byReason = new Map();
      for (const r of data.results.filter((x) => !x.ok)) {
        const reason = r.status ? statusText(r.status) : r.error;
        byReason.set(reason, [...(byReason.get(reason) || []), r.xaddr.split("/")[2] || r.xaddr]);
      }
      showError([...byReason].map(([reason, hosts]) => `${reason}: ${hosts.join(", ")}`));
    } catch (e) {
      showError(e.message);
    }
    button.disabled = false;
    button.textContent = label;
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
      showError(job.error);
      render();
      if (!finished) setTimeout(poll, 400);
      else $("scan-start").disabled = false;
    } catch (e) {
      showError(e.message);
      $("scan-start").disabled = false;
    }
  }

  $("scan-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const targets = [$("scan-subnet").value, ...$("scan-targets").value.split(/[\s,]+/)]
      .map((t) => t.trim()).filter(Boolean);
    if (!targets.length) { showError(msg.msgNoTargets); return; }
    const body = {targets, ...credentials(), timeout_s: Number($("scan-timeout").value) || 3};
    $("scan-start").disabled = true;
    progress.value = 0;
    root.dataset.state = "starting";
    adopted.clear();
    bulkResult.textContent = "";
    try {
      const data = await api("POST", "/api/v1/discovery", body);
      jobId = data.id;
      poll();
    } catch (e) {
      showError(e.message);
      $("scan-start").disabled = false;
    }
  });

  $("bulk-adopt").addEventListener("click", (event) => adopt(null, event.currentTarget));

  $("add-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const address = $("add-address").value.trim();
    const body = {...credentials(), site_id: siteId()};
    if (/^rtsps?:\/\//i.test(address)) body.rtsp_url = address;
    else { body.onvif_url = address; body.set_clock = $("bulk-set-clock").checked; }
    const name = $("add-name").value.trim();
    if (name) body.name = name;
    const button = $("add-submit");
    button.disabled = true;
    const out = $("add-result");
    out.replaceChildren();
    try {
      const data = await api("POST", "/api/v1/cameras", body);
      out.append(`${msg.msgAdded}: `, resultNode({...data.adoption, rebound: false}));
      showError("");
    } catch (e) {
      showError(`${address}: ${e.message}`);
    }
    button.disabled = false;
  });
});
