// Playback page: one or up to four cameras (2×2) played from HLS playlists built from the index,
// kept in step by wall time. The wall time of the playhead comes from each fragment's
// EXT-X-PROGRAM-DATE-TIME (gaps are jumps in it), never from the media clock.
// Hovering the timeline (or tapping it) shows what lies there: the time, a recording gap's reason
// or "not recorded", and for recorded instants a preview picture (the keyframe at or before it,
// GET /api/v1/cameras/{id}/thumbnail.jpg). Links to the live view and to the other playback page
// carry the playhead (?at=<UTC µs>); the multi-camera page lets the user choose its cameras.
"use strict";

(function () {
  const root = document.getElementById("playback");
  chooser();
  if (!root || !root.dataset.cameraIds) return;
  const ids = root.dataset.cameraIds.split(",").filter(Boolean).map(Number);
  const timeZone = root.dataset.timezone || "UTC";
  const canvas = document.getElementById("pb-timeline");
  const clock = document.getElementById("pb-clock");
  const speedSelect = document.getElementById("pb-speed");
  const dateInput = document.getElementById("pb-date");
  const WINDOW_MS = 3 * 3600 * 1000;   // playlist window loaded around a seek
  const SYNC_TOLERANCE_S = 0.6;
  let playing = true;
  let wallMs = null;                    // the shared playhead (UTC ms)
  let lastSeek = null;                  // { wallMs, at: performance.now() } of the last seek

  const gapLabels = JSON.parse(root.dataset.gapLabels || "{}");
  const timeline = new window.VmsTimeline(canvas, {
    timeZone,
    onSeek: (t) => seek(t),
    onView: (start, end) => scheduleTimeline(start, end),
    onHover: (hit, x, y) => showTip(hit, x, y),
    onTap: (hit, x, y) => { showTip(hit, x, y); scheduleTipHide(4000); },
    onFollow: (on) => { followButton.classList.toggle("pb-on", on); },
  });
  const followButton = document.getElementById("pb-follow");

  const players = ids.map((id) => {
    const cell = document.querySelector(`.pb-cell[data-camera-id="${id}"]`);
    return { id, cell, video: cell.querySelector("video"), status: cell.querySelector(".pb-status"),
      hls: null, frags: [], from: null, to: null, ready: false };
  });

  // ---- wall time <-> media time --------------------------------------------------------------
  function wallOfMedia(p, ct) {
    for (const f of p.frags) {
      if (ct >= f.start - 0.05 && ct < f.start + f.duration + 0.05) return f.pdt + (ct - f.start) * 1000;
    }
    return null;
  }

  function wallOf(p) { return wallOfMedia(p, p.video.currentTime); }

  function mediaTimeOf(p, t) {
    for (const f of p.frags) {
      if (t >= f.pdt && t < f.pdt + f.duration * 1000) return f.start + (t - f.pdt) / 1000;
    }
    return null;
  }

  // ---- loading -------------------------------------------------------------------------------
  function load(p, t) {
    if (p.hls) { p.hls.destroy(); p.hls = null; }
    p.frags = []; p.ready = false;
    p.from = t; p.to = t + WINDOW_MS;
    p.status.textContent = root.dataset.labelLoading || "";
    const url = `/api/v1/cameras/${p.id}/playlist.m3u8?from=${Math.round(t * 1000)}&to=${Math.round(p.to * 1000)}`;
    if (!window.Hls || !window.Hls.isSupported()) {
      p.status.textContent = root.dataset.labelUnsupported || "";
      return;
    }
    const hls = new window.Hls({ enableWorker: false, startPosition: -1, maxBufferLength: 20,
      backBufferLength: 30, manifestLoadingMaxRetry: 0 });
    p.hls = hls;
    hls.on(window.Hls.Events.LEVEL_LOADED, (_e, data) => {
      p.frags = data.details.fragments.map((f) => ({ start: f.start, duration: f.duration,
        pdt: f.programDateTime }));
    });
    hls.on(window.Hls.Events.FRAG_PARSED, () => {
      // hls.js refines fragment starts from the media once parsed
      if (hls.levels && hls.levels[0] && hls.levels[0].details) {
        p.frags = hls.levels[0].details.fragments.map((f) => ({ start: f.start, duration: f.duration,
          pdt: f.programDateTime }));
      }
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      p.ready = true;
      p.status.textContent = "";
      p.video.playbackRate = Number(speedSelect.value);
      if (playing) p.video.play().catch(() => {});
    });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR && data.response && data.response.code === 404
          && data.details === window.Hls.ErrorDetails.MANIFEST_LOAD_ERROR) {
        p.status.textContent = root.dataset.labelNoRecording || "";
        hls.destroy(); p.hls = null;
      } else if (data.fatal) {
        // people get plain words; the hls.js code stays on the element for whoever debugs
        const kind = data.type === window.Hls.ErrorTypes.NETWORK_ERROR ? "labelNetworkError"
          : data.type === window.Hls.ErrorTypes.MEDIA_ERROR ? "labelMediaError" : "labelPlaybackError";
        p.status.textContent = root.dataset[kind] || root.dataset.labelPlaybackError || "";
        p.status.dataset.error = data.details || "";
      }
    });
    hls.loadSource(url);
    hls.attachMedia(p.video);
  }

  function seek(t) {
    timeline.setFollow(true);
    wallMs = t;
    lastSeek = { wallMs: t, at: performance.now() };
    for (const p of players) {
      const media = p.ready ? mediaTimeOf(p, t) : null;
      if (media != null) {
        p.video.currentTime = media;
        if (playing) p.video.play().catch(() => {});
      } else {
        load(p, t);
      }
    }
    showWall(t);
  }

  function showWall(t) {
    wallMs = t;
    clock.dataset.wallUs = String(Math.round(t * 1000));
    clock.textContent = timeline.format(t);
    timeline.setCursor(t);
    timeline.reveal(t);   // only while following: never against the user's drag or zoom
    for (const a of atLinks) a.href = withAt(a.dataset.base, t);
  }

  // links that carry the playhead: the live view, the other playback page
  const atLinks = [...document.querySelectorAll("a.pb-at-link")];
  for (const a of atLinks) a.dataset.base = a.getAttribute("href");
  function withAt(base, t) {
    return `${base}${base.includes("?") ? "&" : "?"}at=${Math.round(t * 1000)}`;
  }

  // ---- hover / tap: what lies under the pointer, and a preview picture -------------------------
  const tip = document.getElementById("pb-tip");
  const tipImg = document.getElementById("pb-tip-img");
  const tipTime = document.getElementById("pb-tip-time");
  const tipWhat = document.getElementById("pb-tip-what");
  let tipTimer = null, previewTimer = null, previewAbort = null, previewKey = null;
  let hideTimer = null;

  function describe(hit) {
    if (hit.type === "span") return root.dataset.labelRecorded || "";
    if (hit.type === "future") return root.dataset.labelFuture || "";
    if (hit.type === "gap") {
      const kind = gapLabels[`kind:${hit.kind}`] || hit.kind;
      const reason = gapLabels[hit.reason] || hit.reason;
      return reason && reason.toLowerCase() !== kind.toLowerCase() ? `${kind}: ${reason}` : kind;
    }
    return "";
  }

  function scheduleTipHide(ms) {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => showTip(null), ms);
  }

  function showTip(hit, clientX) {
    clearTimeout(hideTimer);
    if (!hit) {
      tip.hidden = true;
      tip.dataset.type = "";
      clearTimeout(previewTimer);
      if (previewAbort) previewAbort.abort();
      previewKey = null;
      return;
    }
    const wrap = canvas.parentElement.getBoundingClientRect();
    tip.hidden = false;
    tip.dataset.type = hit.type;
    tip.dataset.reason = hit.reason || "";
    tip.dataset.kind = hit.kind || "";
    tip.dataset.atUs = String(Math.round(hit.t * 1000));
    tipTime.textContent = timeline.format(hit.t);
    tipWhat.textContent = describe(hit);
    const left = Math.min(Math.max(0, clientX - wrap.left - tip.offsetWidth / 2),
      Math.max(0, wrap.width - tip.offsetWidth));
    tip.style.left = `${left}px`;
    if (hit.type === "span") {
      schedulePreview(hit.camera, hit.t);
    } else {
      tipImg.hidden = true;
      previewKey = null;
    }
  }

  // one request at a time, for the latest instant only (the server caches a picture per GOP)
  function schedulePreview(cameraId, t) {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      const atUs = Math.round(t * 1000);
      const key = `${cameraId}:${atUs}`;
      if (key === previewKey) return;
      previewKey = key;
      if (previewAbort) previewAbort.abort();
      previewAbort = new AbortController();
      try {
        const resp = await fetch(`/api/v1/cameras/${cameraId}/thumbnail.jpg?at=${atUs}`,
          { credentials: "same-origin", signal: previewAbort.signal });
        if (previewKey !== key) return;
        if (!resp.ok) { tipImg.hidden = true; return; }
        const blob = await resp.blob();
        if (previewKey !== key) return;
        if (tipImg.src.startsWith("blob:")) URL.revokeObjectURL(tipImg.src);
        tipImg.src = URL.createObjectURL(blob);
        tipImg.dataset.cameraId = String(cameraId);
        tipImg.dataset.atUs = String(atUs);
        tipImg.dataset.frameUs = resp.headers.get("X-Frame-Time-Us") || "";
        tipImg.hidden = false;
      } catch (err) {
        if (err.name !== "AbortError") tipImg.hidden = true;
      }
    }, 60);
  }

  // ---- the shared clock: the first camera with media at the playhead leads -------------------
  function tick() {
    const leader = players.find((p) => p.ready && !p.video.paused && wallOf(p) != null)
      || players.find((p) => p.ready && wallOf(p) != null);
    if (leader) {
      const t = wallOf(leader);
      if (t != null) {
        showWall(t);
        for (const p of players) {
          if (p === leader || !p.ready) continue;
          const own = wallOf(p);
          const media = mediaTimeOf(p, t);
          if (media != null && (own == null || Math.abs(own - t) > SYNC_TOLERANCE_S * 1000)) {
            p.video.currentTime = media;
          }
          if (playing && media != null && p.video.paused) p.video.play().catch(() => {});
        }
      }
    }
  }
  setInterval(tick, 250);

  // ---- timeline data -------------------------------------------------------------------------
  let timelineTimer = null;
  let timelineSeq = 0;
  let loaded = null;                    // [from, to] UTC ms of the rows shown
  let events = [];
  function scheduleTimeline(start, end) {
    clearTimeout(timelineTimer);
    // while the loaded rows still cover the view, wait for the gesture to settle
    const covered = loaded && start >= loaded[0] && end <= loaded[1];
    timelineTimer = setTimeout(() => fetchTimeline(start, end), covered ? 250 : 60);
  }

  async function fetchTimeline(start, end) {
    const pad = (end - start) / 2;
    const from = Math.round((start - pad) * 1000), to = Math.round((end + pad) * 1000);
    const seq = ++timelineSeq;
    const resp = await fetch(`/api/v1/timeline?camera_ids=${ids.join(",")}&from=${from}&to=${to}`,
      { credentials: "same-origin" });
    if (!resp.ok || seq !== timelineSeq) return null;
    const data = await resp.json();
    if (seq !== timelineSeq) return null;
    loaded = [from / 1000, to / 1000];
    if (data.cameras.length) timeline.setNow(data.cameras[0].now_us / 1000);
    events = [];
    const rows = data.cameras.map((c) => {
      const evs = c.events.map((e) => ({ type: e.type, start_ms: e.start_us / 1000,
        end_ms: e.end_us === null ? Math.max(e.start_us / 1000, Date.now()) : e.end_us / 1000 }));
      events.push(...evs);
      return { id: c.camera.id, name: c.camera.name,
        spans: c.spans.map((s) => [s.start_us / 1000, s.end_us / 1000]),
        gaps: c.gaps.map((g) => [g.start_us / 1000, g.end_us / 1000, g.reason, g.kind]), events: evs,
        holds: (c.holds || []).map((h) => [h.start_us / 1000, h.end_us / 1000, h.reason]) };
    });
    events.sort((a, b) => a.start_ms - b.start_ms);
    timeline.setRows(rows);
    return data;
  }

  // ---- controls ------------------------------------------------------------------------------
  document.getElementById("pb-play").addEventListener("click", () => {
    playing = !playing;
    for (const p of players) {
      if (playing) p.video.play().catch(() => {}); else p.video.pause();
    }
  });
  speedSelect.addEventListener("change", () => {
    for (const p of players) p.video.playbackRate = Number(speedSelect.value);
  });
  followButton.addEventListener("click", () => {
    timeline.setFollow(true);
    if (wallMs != null) timeline.centerOn(wallMs);
  });
  followButton.classList.add("pb-on");
  // the buttons zoom around the playhead while following it, else around the middle of the view
  const zoomAnchor = () => (timeline.follow ? wallMs : null);
  document.getElementById("pb-zoom-in").addEventListener("click", () => timeline.zoom(0.5, zoomAnchor()));
  document.getElementById("pb-zoom-out").addEventListener("click", () => timeline.zoom(2, zoomAnchor()));
  document.getElementById("pb-next-event").addEventListener("click", () => {
    const now = wallMs == null ? -Infinity : wallMs;
    const next = events.find((e) => e.start_ms > now + 1000);
    if (next) seek(next.start_ms);
  });
  document.getElementById("pb-prev-event").addEventListener("click", () => {
    const now = wallMs == null ? Infinity : wallMs;
    const prev = events.filter((e) => e.start_ms < now - 1000).pop();
    if (prev) seek(prev.start_ms);
  });
  dateInput.addEventListener("change", () => {
    if (!dateInput.value) return;
    const midnight = timeline.localMidnight(dateInput.value);
    timeline.setView(midnight, 24 * 3600 * 1000);
    seek(midnight);
  });

  // ---- hooks for playback_export.js, the browser test and bench/playback_first_frame.py ------------------
  window.VmsPlayback = {
    get lastSeek() { return lastSeek; },
    get wallMs() { return wallMs; },
    format(t) { return timeline.format(t); },
    get timeline() { return timeline; },
    setSelection(range) { timeline.setSelection(range); },
    // the wall time (UTC ms) of a media time of the camera at `index`, or null outside the playlist
    wallOfMedia(index, mediaTime) { return players[index] ? wallOfMedia(players[index], mediaTime) : null; },
  };

  // ---- start ---------------------------------------------------------------------------------
  // "Playback at now" from the live view asks for an instant whose segment is still being written
  // (indexed when it closes): open at the latest recorded footage instead, when nothing recorded
  // covers or follows that recent instant.
  const RECENT_MS = 15 * 60000;
  function recordedNear(at, data) {
    if (!data || !data.cameras.length) return at;
    const spans = data.cameras.flatMap((c) => c.spans);
    const nowMs = data.cameras[0].now_us / 1000;
    if (at < nowMs - RECENT_MS || spans.some((s) => s.end_us / 1000 >= at)) return at;
    const last = spans.reduce((a, s) => (!a || s.end_us > a.end_us ? s : a), null);
    return last ? Math.max(last.start_us / 1000, last.end_us / 1000 - 5000) : at;
  }

  async function start() {
    const at = root.dataset.at ? Number(root.dataset.at) / 1000 : null;
    if (at != null) {
      timeline.setView(at - 30 * 60000, 60 * 60000);
      dateInput.value = timeline.localDate(at);
      let recent = null;
      const until = Math.max(at, Date.now()) + 1000;
      if (at > Date.now() - RECENT_MS) {
        try {
          const resp = await fetch(`/api/v1/timeline?camera_ids=${ids.join(",")}&from=${
            Math.round((at - RECENT_MS) * 1000)}&to=${Math.round(until * 1000)}`, { credentials: "same-origin" });
          if (resp.ok) recent = await resp.json();
        } catch (err) { /* open at the instant asked for */ }
      }
      seek(recordedNear(at, recent));
      return;
    }
    const end = Date.now();
    timeline.setView(end - 24 * 3600000, 24 * 3600000);
    // its own request: fetchTimeline drops an answer a newer request (a pan, a resize) superseded
    let data = null;
    try {
      const resp = await fetch(`/api/v1/timeline?camera_ids=${ids.join(",")}&from=${
        Math.round((end - 24 * 3600000) * 1000)}&to=${Math.round(end * 1000)}`, { credentials: "same-origin" });
      if (resp.ok) data = await resp.json();
    } catch (err) { /* the timeline's own requests will show what there is */ }
    let last = null;
    for (const c of (data ? data.cameras : [])) {
      for (const s of c.spans) if (last == null || s.end_us > last.end_us) last = s;
    }
    const t = last ? Math.max(last.start_us / 1000, last.end_us / 1000 - 60000) : end - 60000;
    timeline.setView(t - 30 * 60000, 60 * 60000);
    dateInput.value = timeline.localDate(t);
    seek(t);
  }
  start();

  // ---- the multi-camera page's chooser (works before any camera is chosen) ------------------------
  function chooser() {
    const form = document.getElementById("pb-choose-form");
    if (!form) return;
    const max = Number(form.dataset.max) || 4;
    const error = document.getElementById("pb-choose-error");
    form.addEventListener("submit", (ev) => {
      const chosen = [...form.querySelectorAll("input.pb-choice:checked")].map((i) => i.value);
      if (chosen.length > max || chosen.length === 0) {
        ev.preventDefault();
        error.textContent = (chosen.length ? form.dataset.msgTooMany : form.dataset.msgNone) || "";
        return;
      }
      document.getElementById("pb-choose-ids").value = chosen.join(",");
      const at = document.getElementById("pb-choose-at");
      const shown = window.VmsPlayback && window.VmsPlayback.wallMs;
      if (shown != null) at.value = String(Math.round(shown * 1000));
      if (!at.value) at.disabled = true;   // no empty ?at=
    });
  }
})();
