// Live view: plays fragmented MP4 from the live WebSocket through Media Source Extensions.
//
// Every <video data-live-src="/api/v1/cameras/ID/live?stream=…"> on the page gets a LivePlayer.
// The server sends a JSON "init" message (codec, MIME type), the binary init segment, then one
// binary fragment (moof+mdat) per frame. The player keeps close to the live edge (seeks forward
// when it is more than MAX_LAG_S behind, plays slightly faster when a little behind), trims old
// buffer, and reconnects with a backoff when the socket closes. Figures for tests and the
// benchmark are kept on window.vmsLivePlayers[i].stats.
//
// A stalled camera never looks live: when the server says "stall" (no frame for a second), when
// no fragment arrived for STALL_MS, or while reconnecting, the last picture stays under an overlay
// "No signal since HH:MM:SS" (the user's locale and time zone) and the status dot turns red; the
// first new fragment clears it. Also here: full-screen buttons ([data-fullscreen]), the links to
// playback at the instant on screen (the page's, each grid tile's), and the grid's layout editor
// (saved layouts API).
"use strict";

(() => {
  const MAX_LAG_S = 1.0;      // seek to the live edge beyond this
  const EDGE_S = 0.15;        // where to land behind the newest buffered frame
  const KEEP_S = 10;          // buffer kept behind the playhead
  const RECONNECT_MAX_MS = 10000;
  const STALL_MS = 1500;      // no fragment for this long: the picture is not live any more
  // camsim's capture-time SEI (user_data_unregistered UUID, then int64 UTC µs): for latency figures
  const SEI_UUID = [0xe7, 0xc1, 0x39, 0x1a, 0x3e, 0x8e, 0x48, 0x7f,
                    0xbe, 0xcc, 0x61, 0x3e, 0xdd, 0x94, 0xe4, 0x87];

  function boxes(view, start, end) {
    const out = [];
    let pos = start;
    while (pos + 8 <= end) {
      const size = view.getUint32(pos);
      const type = String.fromCharCode(view.getUint8(pos + 4), view.getUint8(pos + 5),
                                       view.getUint8(pos + 6), view.getUint8(pos + 7));
      if (size < 8 || pos + size > end) break;
      out.push({ type, start: pos + 8, end: pos + size });
      pos += size;
    }
    return out;
  }

  // The capture time (ms since the epoch) stamped in a fragment's first frame, or null.
  function captureTimeMs(buffer) {
    const view = new DataView(buffer);
    const mdat = boxes(view, 0, buffer.byteLength).find((b) => b.type === "mdat");
    if (!mdat) return null;
    const bytes = new Uint8Array(buffer, mdat.start, Math.min(mdat.end - mdat.start, 1024));
    outer: for (let i = 0; i + SEI_UUID.length + 12 <= bytes.length; i++) {
      for (let j = 0; j < SEI_UUID.length; j++) {
        if (bytes[i + j] !== SEI_UUID[j]) continue outer;
      }
      const raw = [];  // the int64 after the UUID, emulation-prevention bytes removed
      let zeros = 0;
      for (let k = i + SEI_UUID.length; k < bytes.length && raw.length < 8; k++) {
        const b = bytes[k];
        if (zeros >= 2 && b === 3) { zeros = 0; continue; }
        raw.push(b);
        zeros = b === 0 ? zeros + 1 : 0;
      }
      if (raw.length < 8) return null;
      let us = 0n;
      for (const b of raw) us = (us << 8n) | BigInt(b);
      return Number(us) / 1000;
    }
    return null;
  }

  function clockText(ms) {
    const lang = document.documentElement.lang || undefined;
    return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit",
                                           second: "2-digit" }).format(new Date(ms));
  }

  class LivePlayer {
    constructor(video, status, overlay) {
      this.video = video;
      this.status = status;
      this.overlay = overlay;
      this.lastFragmentMs = null;
      this.url = video.dataset.liveSrc;
      this.queue = [];
      this.retryMs = 1000;
      this.stopped = false;
      this.stats = { connects: 0, inits: 0, fragments: 0, bytes: 0, seeks: 0, codec: "",
                     lastCaptureMs: null, lastReceivedMs: null, captureToReceiveMs: null,
                     lagS: null, latencyMs: null, error: "", stalled: false,
                     stallSinceMs: null, stalls: 0 };
      this.watchdog = setInterval(() => {
        if (this.lastFragmentMs !== null && Date.now() - this.lastFragmentMs > STALL_MS) {
          this.stall(this.lastFragmentMs);
        }
      }, 250);
      video.addEventListener("timeupdate", () => this.chase());
      if ("requestVideoFrameCallback" in video) {
        const onFrame = (_now, meta) => { this.frameShown(meta); video.requestVideoFrameCallback(onFrame); };
        video.requestVideoFrameCallback(onFrame);
      }
    }

    // No new picture since sinceMs (UTC ms): keep the last frame, say so over it.
    stall(sinceMs) {
      const s = this.stats;
      if (s.stalled) {
        if (sinceMs < s.stallSinceMs) s.stallSinceMs = sinceMs;
      } else {
        s.stalled = true;
        s.stalls += 1;
        s.stallSinceMs = sinceMs;
      }
      const d = this.status ? this.status.dataset : {};
      const text = (d.textNosignalsince || "No signal since {time}")
        .replace("{time}", clockText(s.stallSinceMs));
      if (this.overlay) { this.overlay.textContent = text; this.overlay.hidden = false; }
      this.say("Nosignal");
      if (this.status) this.status.textContent = text;
    }

    resume() {
      if (!this.stats.stalled) return;
      this.stats.stalled = false;
      this.stats.stallSinceMs = null;
      if (this.overlay) this.overlay.hidden = true;
      this.say("Live");
    }

    say(key, extra) {
      if (!this.status) return;
      const text = this.status.dataset["text" + key] || key;
      this.status.textContent = extra ? `${text} · ${extra}` : text;
      this.status.classList.toggle("live-ok", key === "Live");
      this.status.classList.toggle("live-bad", key !== "Live" && key !== "Connecting");
    }

    connect() {
      if (this.stopped) return;
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${this.url}`);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.expectInit = false;
      this.stats.connects += 1;
      ws.onopen = () => { this.retryMs = 1000; };
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = () => {
        if (this.stopped) return;
        if (this.lastFragmentMs !== null) this.stall(this.lastFragmentMs);
        else this.say("Reconnecting");
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
      };
    }

    onMessage(data) {
      if (typeof data === "string") {
        const msg = JSON.parse(data);
        if (msg.type === "init") {
          this.mime = msg.mime;
          this.stats.codec = msg.codec;
          this.expectInit = true;
        } else if (msg.type === "status") {
          if (this.lastFragmentMs !== null) this.stall(this.lastFragmentMs);
          else this.say("Reconnecting", msg.message);
        } else if (msg.type === "stall") {
          this.stall(msg.since_us / 1000);
        } else if (msg.type === "resumed") {
          this.resume();
        } else if (msg.type === "closed") {
          this.stats.error = msg.message || "";
        }
        return;
      }
      if (this.expectInit) {
        this.expectInit = false;
        this.stats.inits += 1;
        this.open(data);
        return;
      }
      this.stats.fragments += 1;
      this.stats.bytes += data.byteLength;
      this.lastFragmentMs = Date.now();
      this.resume();
      const captured = captureTimeMs(data);
      if (captured !== null) {
        this.stats.lastCaptureMs = captured;
        this.stats.lastReceivedMs = Date.now();
        this.stats.captureToReceiveMs = this.stats.lastReceivedMs - captured;
      }
      this.queue.push(data);
      this.pump();
    }

    open(init) {
      if (!window.MediaSource || !MediaSource.isTypeSupported(this.mime)) {
        this.say("Unsupported", this.mime);
        this.stats.error = `unsupported: ${this.mime}`;
        this.stopped = true;
        if (this.ws) this.ws.close();
        return;
      }
      this.queue = [init];
      this.sb = null;
      const ms = new MediaSource();
      this.ms = ms;
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = URL.createObjectURL(ms);
      this.video.src = this.objectUrl;
      ms.addEventListener("sourceopen", () => {
        if (this.ms !== ms) return;
        this.sb = ms.addSourceBuffer(this.mime);
        this.sb.mode = "segments";
        this.sb.addEventListener("updateend", () => { this.trim(); this.chase(); this.pump(); });
        this.pump();
      }, { once: true });
    }

    pump() {
      const sb = this.sb;
      if (!sb || sb.updating || this.queue.length === 0 || this.ms.readyState !== "open") return;
      let chunk = this.queue.shift();
      if (this.queue.length > 0 && chunk.byteLength < 65536) {  // append a backlog in one go
        const parts = [chunk];
        let size = chunk.byteLength;
        while (this.queue.length > 0 && size < 1 << 20) { const p = this.queue.shift(); parts.push(p); size += p.byteLength; }
        const all = new Uint8Array(size);
        let off = 0;
        for (const p of parts) { all.set(new Uint8Array(p), off); off += p.byteLength; }
        chunk = all.buffer;
      }
      try {
        sb.appendBuffer(chunk);
      } catch (err) {
        this.stats.error = String(err);
        if (err.name === "QuotaExceededError") { this.queue.unshift(chunk); this.trim(true); }
        else if (this.ws) this.ws.close();
      }
    }

    trim(force) {
      const sb = this.sb;
      const v = this.video;
      if (!sb || sb.updating || sb.buffered.length === 0) return;
      const start = sb.buffered.start(0);
      if (force || v.currentTime - start > KEEP_S * 2) {
        const to = Math.max(start, v.currentTime - KEEP_S);
        if (to > start) sb.remove(start, to);
      }
    }

    chase() {
      const v = this.video;
      const b = v.buffered;
      if (b.length === 0) return;
      const end = b.end(b.length - 1);
      if (v.currentTime < b.start(0) || end - v.currentTime > MAX_LAG_S) {
        v.currentTime = Math.max(b.start(b.length - 1), end - EDGE_S);
        this.stats.seeks += 1;
      }
      const lag = end - v.currentTime;
      v.playbackRate = lag > 0.5 ? 1.1 : 1.0;
      this.stats.lagS = lag;
      if (v.paused) v.play().catch(() => {});
      if (this.stats.captureToReceiveMs !== null && this.stats.latencyMs === null) this.updateLatency(lag);
    }

    frameShown(meta) {
      const b = this.video.buffered;
      if (b.length === 0) return;
      this.updateLatency(Math.max(0, b.end(b.length - 1) - meta.mediaTime));
    }

    // Glass to glass ≈ (newest frame's age when it arrived) + (how far playback is behind it) +
    // (time since it arrived); reported on the status line and in stats.latencyMs.
    updateLatency(behindS) {
      const s = this.stats;
      if (s.stalled) return;
      if (s.lastCaptureMs === null) { this.say("Live"); return; }
      s.latencyMs = Date.now() - s.lastCaptureMs + behindS * 1000;
      this.say("Live", `${(s.latencyMs / 1000).toFixed(1)} s`);
    }
  }

  // The instant on screen (UTC ms): the newest frame's capture time when known, minus how far
  // playback is behind it; the stall's start when stalled.
  function instantShown(player) {
    const s = player.stats;
    if (s.stalled && s.stallSinceMs !== null) return s.stallSinceMs;
    if (s.latencyMs !== null) return Date.now() - s.latencyMs;
    return Date.now() - (s.lagS || 0) * 1000;
  }

  function setupFullscreen() {
    document.addEventListener("click", (ev) => {
      const button = ev.target.closest("[data-fullscreen]");
      if (!button) return;
      ev.preventDefault();
      const target = document.querySelector(button.dataset.fullscreen);
      if (!target) return;
      if (document.fullscreenElement) {
        document.exitFullscreen().catch(() => {});
      } else if (target.requestFullscreen) {
        target.requestFullscreen().catch((err) => { button.title = String(err); });
      }
    });
  }

  // Each playback link ([data-playback-base]: the live page's, and one per grid tile) opens
  // playback at the instant its player shows: the tile's own video, else the page's first.
  function setupPlaybackLinks(players) {
    if (players.length === 0) return;
    for (const link of document.querySelectorAll("a[data-playback-base]")) {
      const tile = link.closest("figure");
      const video = tile ? tile.querySelector("video[data-live-src]") : null;
      const player = players.find((p) => p.video === video) || players[0];
      const update = () => {
        const at = Math.round(instantShown(player) * 1000);
        link.href = `${link.dataset.playbackBase}?at=${at}`;
      };
      link.addEventListener("pointerdown", update);
      link.addEventListener("focus", update);
      link.addEventListener("click", update);
    }
  }

  function setupLayoutEditor() {
    const editor = document.getElementById("layout-editor");
    const toggle = document.getElementById("layout-edit");
    if (!editor || !toggle) return;
    toggle.hidden = false;
    const d = editor.dataset;
    const grid = document.getElementById("layout-grid");
    const selects = [...editor.querySelectorAll("select.layout-tile")];
    const message = document.getElementById("layout-message");
    const show = (text) => { message.textContent = text; message.hidden = !text; };
    toggle.addEventListener("click", () => { editor.hidden = !editor.hidden; });
    const sizeTiles = () => {
      const n = Number(grid.value);
      selects.forEach((s, i) => { s.closest("li").hidden = i >= n * n; });
    };
    grid.addEventListener("change", sizeTiles);
    async function api(method, url, body) {
      const response = await fetch(url, {
        method, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": d.csrf },
        body: body === undefined ? undefined : JSON.stringify(body) });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (!response.ok) throw new Error(data && data.error ? data.error.message : response.statusText);
      return data;
    }
    async function save(asNew) {
      const n = Number(grid.value);
      const body = { name: document.getElementById("layout-name").value.trim(), grid: n,
                     camera_ids: selects.slice(0, n * n).map((s) => (s.value ? Number(s.value) : null)) };
      try {
        const saved = d.layoutId && !asNew
          ? await api("PUT", `/api/v1/layouts/${d.layoutId}`, body)
          : await api("POST", "/api/v1/layouts", body);
        show(d.msgSaved);
        location.assign(`/live?layout_id=${saved.id}`);
      } catch (err) { show(err.message); }
    }
    document.getElementById("layout-save").addEventListener("click", () => save(false));
    const saveNew = document.getElementById("layout-save-new");
    if (saveNew) saveNew.addEventListener("click", () => save(true));
    const del = document.getElementById("layout-delete");
    if (del) {
      del.addEventListener("click", async () => {
        if (!window.confirm(d.msgConfirmDelete)) return;
        try {
          await api("DELETE", `/api/v1/layouts/${d.layoutId}`);
          show(d.msgDeleted);
          location.assign("/live");
        } catch (err) { show(err.message); }
      });
    }
  }

  function start() {
    setupFullscreen();
    setupLayoutEditor();
    const players = [];
    for (const video of document.querySelectorAll("video[data-live-src]")) {
      const tile = video.closest("figure");
      const status = tile ? tile.querySelector("[data-live-status]") : null;
      const overlay = tile ? tile.querySelector("[data-live-overlay]") : null;
      const player = new LivePlayer(video, status, overlay);
      players.push(player);
      if (!window.MediaSource) { player.say("Unsupported"); continue; }
      player.connect();
    }
    window.vmsLivePlayers = players;
    setupPlaybackLinks(players);
    window.addEventListener("pagehide", () => {
      for (const p of players) { p.stopped = true; clearInterval(p.watchdog); if (p.ws) p.ws.close(); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
