// The camera page's management card: rename, move, recording profile, NTP, clock, reboot, remove.
// Each action calls the JSON API (site-scoped and audited on the server) and shows its answer.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("camera-manage");
  if (!root) return;
  const msg = root.dataset;
  const id = msg.cameraId;
  const result = document.getElementById("manage-result");
  const errorBox = document.getElementById("manage-error");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));

  function show(text, error) {
    result.textContent = error ? "" : text;
    errorBox.textContent = error ? text : "";
    errorBox.hidden = !error;
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
    if (!response.ok) throw new Error(data && data.error ? data.error.message : response.statusText);
    return data;
  }

  async function act(button, work) {
    if (button) button.disabled = true;
    show(msg.msgWorking, false);
    try {
      show(await work(), false);
    } catch (e) {
      show(e.message, true);
    }
    if (button) button.disabled = false;
  }

  function on(id, event, handler) {
    const el = document.getElementById(id);
    if (el) el.addEventListener(event, (ev) => { ev.preventDefault(); handler(ev); });
  }

  on("manage-rename", "submit", (ev) => act(ev.submitter, async () => {
    const name = document.getElementById("manage-name").value.trim();
    const data = await api("PATCH", `/api/v1/cameras/${id}`, {name});
    const hostname = document.getElementById("manage-hostname");
    if (hostname && hostname.checked) await api("POST", `/api/v1/cameras/${id}/configure`, {name});
    document.querySelector("h1").textContent = data.name;
    document.title = document.title.replace(msg.cameraName, data.name);
    msg.cameraName = data.name;
    return `${msg.msgRenamed}: ${data.name}`;
  }));

  on("manage-move", "submit", (ev) => act(ev.submitter, async () => {
    const siteId = Number(document.getElementById("manage-site").value);
    const data = await api("PATCH", `/api/v1/cameras/${id}`, {site_id: siteId});
    return fill(msg.msgMoved, {site: data.site.name});
  }));

  on("manage-profile", "submit", (ev) => act(ev.submitter, async () => {
    const profile = {};
    const resolution = document.getElementById("manage-resolution").value.trim();
    if (resolution) {
      const [w, h] = resolution.split(/[xX×]/).map(Number);
      profile.width = w;
      profile.height = h;
    }
    for (const [key, field] of [["fps", "manage-fps"], ["bitrate_kbps", "manage-bitrate"],
                                ["gop_s", "manage-gop"]]) {
      const value = document.getElementById(field).value;
      if (value !== "") profile[key] = Number(value);
    }
    const data = await api("POST", `/api/v1/cameras/${id}/configure`, {
      stream: document.getElementById("manage-stream").value, profile});
    const a = data.accepted || {};
    const accepted = [a.width && a.height ? `${a.width}×${a.height}` : "", a.fps ? `${a.fps} fps` : "",
                      a.bitrate_kbps ? `${a.bitrate_kbps} kbit/s` : "",
                      a.gop_s ? `GOP ${a.gop_s} s` : ""].filter(Boolean).join(", ");
    let text = fill(msg.msgProfile, {accepted});
    if (data.clamped && data.clamped.length) text += " · " + fill(msg.msgClamped, {fields: data.clamped.join(", ")});
    return text;
  }));

  on("manage-ntp", "submit", (ev) => act(ev.submitter, async () => {
    const servers = document.getElementById("manage-ntp-servers").value
      .split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    await api("POST", `/api/v1/cameras/${id}/configure`, {ntp_servers: servers});
    return `${msg.msgNtp}: ${servers.join(", ")}`;
  }));

  on("manage-clock", "click", (ev) => act(ev.currentTarget, async () => {
    const data = await api("POST", `/api/v1/cameras/${id}/clock`);
    const before = data.offset_before_us == null ? "?" : (data.offset_before_us / 1e6).toFixed(1);
    return fill(msg.msgClock, {seconds: before});
  }));

  on("manage-reboot", "click", (ev) => {
    if (!window.confirm(msg.msgConfirmReboot)) return;
    act(ev.currentTarget, async () => {
      await api("POST", `/api/v1/cameras/${id}/configure`, {reboot: true});
      return msg.msgRebooting;
    });
  });

  on("manage-remove", "submit", (ev) => {
    const purge = document.getElementById("manage-delete-recordings").checked;
    if (purge && document.getElementById("manage-delete-confirm").value.trim() !== msg.cameraName) {
      show(msg.msgConfirmDelete, true);
      return;
    }
    if (!purge && !window.confirm(msg.msgConfirmRemove)) return;
    act(ev.submitter, async () => {
      await api("DELETE", `/api/v1/cameras/${id}${purge ? "?delete_recordings=true" : ""}`);
      window.location.assign(purge ? "/cameras" : `/cameras/${id}`);
      return msg.msgDone;
    });
  });
});
