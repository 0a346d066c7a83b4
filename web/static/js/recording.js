// Recording section of the camera page: live recorder state per stream, from the JSON API; and
// the recording settings form, whose schedule, pre/post-roll and transport fields are filled in
// from /api/v1/cameras/{id}/recording-settings and enabled here (disabled fields are not sent).
"use strict";
(function () {
  const section = document.getElementById("camera-recording-settings");
  if (!section) return;
  fetch(section.dataset.src, { credentials: "same-origin" })
    .then((res) => (res.ok ? res.json() : null))
    .then((data) => {
      if (!data) return;
      for (const el of section.querySelectorAll("[data-field]")) {
        if (!el.disabled) continue; // re-shown after a refused post: keep what was sent
        el.value = data[el.dataset.field] ?? "";
        el.disabled = false;
      }
      for (const el of section.querySelectorAll("select[data-stream]")) {
        if (!el.disabled) continue;
        const st = (data.streams || {})[el.dataset.stream];
        if (st) el.value = st.rtsp_transport;
        el.disabled = false;
      }
    })
    .catch(() => {
      // offline: the fields stay disabled and a post leaves them unchanged
    });
  // retention: the camera's own overrides (blank: inherited; the effective value as placeholder)
  const retention = section.querySelector("fieldset.retention");
  if (!retention) return;
  fetch(retention.dataset.src, { credentials: "same-origin" })
    .then((res) => (res.ok ? res.json() : null))
    .then((data) => {
      if (!data) return;
      for (const el of retention.querySelectorAll("[data-retention-field]")) {
        if (!el.disabled) continue;
        const field = el.dataset.retentionField;
        el.value = data.camera[field] ?? "";
        el.placeholder = data.effective[field] ?? "";
        el.disabled = false;
      }
    })
    .catch(() => {});
})();
(function () {
  const section = document.getElementById("camera-recording");
  if (!section) return;
  const labels = JSON.parse(section.dataset.labels || "{}");
  const list = section.querySelector(".recording-streams");
  async function refresh() {
    try {
      const res = await fetch(section.dataset.src, { credentials: "same-origin" });
      if (!res.ok) return;
      const data = await res.json();
      list.replaceChildren();
      for (const [kind, st] of Object.entries(data.status.streams || {})) {
        const li = document.createElement("li");
        const badge = document.createElement("span");
        badge.className = "status status-" + st.state;
        badge.textContent = labels[st.state] || st.state;
        li.append((labels["stream_" + kind] || kind) + ": ", badge, " " + (st.reason_text || st.reason));
        list.append(li);
      }
    } catch (e) {
      // offline or signed out: keep the server-rendered status
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
