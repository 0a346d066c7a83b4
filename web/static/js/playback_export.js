// Export from the playback screen: mark the start and the end at the playhead (the shared wall
// clock of the synchronised players), see the range on the timeline, and export it for every
// camera on screen. The job is the same as the exports page's (POST /api/v1/exports); its progress
// is followed here until the download and manifest links appear.
"use strict";

(function () {
  const root = document.getElementById("pb-export");
  const playback = document.getElementById("playback");
  if (!root || !playback || !window.VmsPlayback) return;
  const ids = playback.dataset.cameraIds.split(",").filter(Boolean).map(Number);
  const status = document.getElementById("pb-export-status");
  const selection = document.getElementById("pb-selection");
  const button = document.getElementById("pb-export-start");
  const msg = root.dataset;
  let markIn = null;
  let markOut = null;                     // UTC ms

  function range() {
    if (markIn == null || markOut == null) return null;
    return markIn < markOut ? [markIn, markOut] : [markOut, markIn];
  }

  function show() {
    const r = range();
    const fmt = (t) => (t == null ? "—" : window.VmsPlayback.format(t));
    selection.textContent = `${fmt(markIn)} – ${fmt(markOut)}`;
    button.disabled = !(r && r[1] - r[0] >= 1000);
    window.VmsPlayback.setSelection(r);
  }

  document.getElementById("pb-mark-in").addEventListener("click", () => {
    markIn = window.VmsPlayback.wallMs;
    show();
  });
  document.getElementById("pb-mark-out").addEventListener("click", () => {
    markOut = window.VmsPlayback.wallMs;
    show();
  });

  function link(href, text, cls) {
    const a = document.createElement("a");
    a.href = href; a.textContent = text; a.className = cls;
    return a;
  }

  async function follow(id) {
    for (;;) {
      const resp = await fetch(`/api/v1/exports/${id}`, { credentials: "same-origin" });
      if (!resp.ok) { status.textContent = `${msg.msgFailed}: HTTP ${resp.status}`; return; }
      const e = await resp.json();
      root.dataset.state = e.state;
      if (e.state === "done") {
        status.replaceChildren(`${msg.msgDone} #${id} `,
          link(`/api/v1/exports/${id}/file`, msg.msgDownload, "pb-export-download"), " · ",
          link(`/api/v1/exports/${id}/manifest`, msg.msgManifest, "pb-export-manifest"));
        return;
      }
      if (e.state === "failed" || e.state === "cancelled") {
        const why = e.error_text || e.error || (e.state === "cancelled" ? msg.msgCancelled : "");
        status.textContent = why ? `${msg.msgFailed} #${id}: ${why}` : `${msg.msgFailed} #${id}`;
        return;
      }
      status.textContent = `${msg.msgRunning} #${id}: ${Math.round(e.progress * 100)} %`;
      await new Promise((done) => setTimeout(done, 500));
    }
  }

  button.addEventListener("click", async () => {
    const r = range();
    if (!r) return;
    button.disabled = true;
    status.textContent = msg.msgQueued;
    try {
      const resp = await fetch("/api/v1/exports", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": msg.csrf },
        body: JSON.stringify({ camera_ids: ids, from: Math.round(r[0] * 1000),
          to: Math.round(r[1] * 1000) }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        status.textContent = `${msg.msgFailed}: ${(body.error && body.error.message) || resp.status}`;
        return;
      }
      await follow(body.id);
    } finally {
      button.disabled = !range();
    }
  });
  show();
})();
