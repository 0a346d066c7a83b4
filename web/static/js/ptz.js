// PTZ controls of the live page: press-and-hold over the PTZ WebSocket, presets, click-to-centre.
//
// Holding a button (mouse, touch or pen: pointer events), an arrow key or +/- sends
// {"type": "move", pan, tilt, zoom} once, then {"type": "keepalive"} every KEEPALIVE_MS; releasing
// sends {"type": "stop"}. The server stops the camera by itself when keep-alives stop for 500 ms
// (a closed tab, a phone without signal) or the socket closes, so nothing here has to be reliable
// for the camera to stop. The server also says who moves the camera ("Moved by X").
// Figures for tests and the benchmark are on window.vmsPtz.stats.
"use strict";

(() => {
  const KEEPALIVE_MS = 150;
  const CENTRE_GAIN = 0.2;   // click offset (-1..1 of the picture) → generic translation: approximate
  const RECONNECT_MAX_MS = 8000;
  const KEYS = {
    ArrowLeft: { pan: -1 }, ArrowRight: { pan: 1 }, ArrowUp: { tilt: 1 }, ArrowDown: { tilt: -1 },
    "+": { zoom: 1 }, "=": { zoom: 1 }, "-": { zoom: -1 }, "_": { zoom: -1 },
  };

  const root = document.getElementById("ptz");
  if (!root) return;
  const cameraId = root.dataset.ptzCamera;
  const csrf = root.dataset.csrf;
  const movedBy = root.querySelector("[data-ptz-moved-by]");
  const speed = root.querySelector("[data-ptz-speed]");
  const video = document.querySelector("video.live-video");
  const stats = { presses: [], releases: [], sent: 0, state: null, connected: false };
  window.vmsPtz = { stats };

  let ws = null;
  let caps = null;
  let holding = null;        // {pan, tilt, zoom, source}
  let keepalive = null;
  let backoff = 500;

  const text = (name, values = {}) => {
    let out = root.dataset[name] || "";
    for (const [k, v] of Object.entries(values)) out = out.replace(`{${k}}`, v);
    return out;
  };

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      stats.sent += 1;
      return true;
    }
    return false;
  }

  // --- press and hold ---------------------------------------------------------------------------

  function press(vector, source) {
    if (holding) release();
    const factor = Number(speed && speed.value) || 0.5;
    holding = { pan: (vector.pan || 0) * factor, tilt: (vector.tilt || 0) * factor,
                zoom: (vector.zoom || 0) * factor, source };
    stats.presses.push(performance.timeOrigin + performance.now());
    send({ type: "move", pan: holding.pan, tilt: holding.tilt, zoom: holding.zoom });
    keepalive = setInterval(() => send({ type: "keepalive" }), KEEPALIVE_MS);
  }

  function release() {
    if (!holding) return;
    holding = null;
    clearInterval(keepalive);
    keepalive = null;
    stats.releases.push(performance.timeOrigin + performance.now());
    send({ type: "stop" });
    for (const b of root.querySelectorAll("[aria-pressed=true]")) b.setAttribute("aria-pressed", "false");
  }

  for (const button of root.querySelectorAll("[data-ptz-move]")) {
    const vector = { pan: Number(button.dataset.pan || 0), tilt: Number(button.dataset.tilt || 0),
                     zoom: Number(button.dataset.zoom || 0) };
    button.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      button.setPointerCapture(ev.pointerId);
      button.setAttribute("aria-pressed", "true");
      press(vector, button);
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      button.addEventListener(type, () => { if (holding && holding.source === button) release(); });
    }
    button.addEventListener("contextmenu", (ev) => ev.preventDefault());  // long press on phones
    // keyboard users of the button itself: Space/Enter hold it like a press
    button.addEventListener("keydown", (ev) => {
      if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) { ev.preventDefault(); press(vector, button); }
    });
    button.addEventListener("keyup", (ev) => {
      if (ev.key === " " || ev.key === "Enter") release();
    });
  }

  document.addEventListener("keydown", (ev) => {
    const vector = KEYS[ev.key];
    if (!vector || ev.repeat || root.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target && ev.target.tagName) || "";
    if (["INPUT", "SELECT", "TEXTAREA"].includes(tag)) return;
    if ((vector.zoom && caps && !caps.continuous_zoom) || (!vector.zoom && caps && !caps.continuous)) return;
    ev.preventDefault();
    press(vector, ev.key);
  });
  document.addEventListener("keyup", (ev) => {
    if (holding && (holding.source === ev.key || KEYS[ev.key])) release();
  });
  window.addEventListener("blur", release);
  document.addEventListener("visibilitychange", () => { if (document.hidden) release(); });
  window.addEventListener("pagehide", release);

  // --- the socket and who moves the camera ------------------------------------------------------

  function showState(state) {
    stats.state = state;
    if (state.capabilities !== undefined) applyCaps(state.capabilities);
    movedBy.classList.toggle("ptz-mine", Boolean(state.mine));
    if (state.moving && state.mine) movedBy.textContent = text("textYou");
    else if (state.moving && state.user) movedBy.textContent = text("textMovedBy", { user: state.user });
    else movedBy.textContent = "";
    if (holding && state.moving && !state.mine) {  // someone else took over: stop holding
      clearInterval(keepalive);
      keepalive = null;
      holding = null;
      for (const b of root.querySelectorAll("[aria-pressed=true]")) b.setAttribute("aria-pressed", "false");
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/api/v1/cameras/${cameraId}/ptz/ws`);
    ws.addEventListener("open", () => { stats.connected = true; backoff = 500; });
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "state") showState(msg);
      else if (msg.type === "error") movedBy.textContent = text("textError", { message: msg.message });
    });
    ws.addEventListener("close", () => {
      stats.connected = false;
      if (holding) release();
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
    });
  }

  function applyCaps(next) {
    const had = caps;
    caps = next;
    root.hidden = !caps;
    if (!caps) return;
    for (const b of root.querySelectorAll("[data-ptz-move]")) {
      const zoomOnly = Number(b.dataset.zoom || 0) !== 0;
      b.disabled = zoomOnly ? !caps.continuous_zoom : !caps.continuous;
    }
    root.querySelector("[data-ptz-home]").disabled = !caps.home;
    root.querySelector("[data-ptz-set-home]").hidden = !caps.home || caps.fixed_home === true;
    root.querySelector("[data-ptz-presets]").hidden = !caps.presets;
    const hint = root.querySelector("[data-ptz-centre-hint]");
    hint.hidden = !(caps.relative && video);
    hint.textContent = text("textCentre");
    if (video) video.classList.toggle("ptz-centre", Boolean(caps.relative));
    if (!had && caps.presets) loadPresets();
  }

  // --- one-shot calls: presets, home, click-to-centre -------------------------------------------

  async function call(method, path, body) {
    const resp = await fetch(`/api/v1/cameras/${cameraId}/ptz${path}`, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      movedBy.textContent = text("textError", { message: (data.error && data.error.message) || resp.status });
      throw new Error(`PTZ ${path}: ${resp.status}`);
    }
    return data;
  }

  const list = root.querySelector("[data-ptz-preset-list]");
  const rowTemplate = root.querySelector("[data-ptz-preset-row]");

  async function loadPresets() {
    const { presets } = await call("GET", "/presets");
    list.replaceChildren();
    if (!presets.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = text("textNoPresets");
      list.append(li);
    }
    for (const preset of presets) {
      const row = rowTemplate.content.firstElementChild.cloneNode(true);
      const token = encodeURIComponent(preset.token);
      row.dataset.token = preset.token;
      const go = row.querySelector("[data-ptz-goto]");
      go.textContent = preset.name;
      go.addEventListener("click", () => call("POST", `/presets/${token}/goto`).catch(() => {}));
      row.querySelector("[data-ptz-rename]").addEventListener("click", async () => {
        const name = prompt(text("textRename"), preset.name);
        if (name && name.trim()) { await call("PUT", `/presets/${token}`, { name: name.trim() }); loadPresets(); }
      });
      row.querySelector("[data-ptz-remove]").addEventListener("click", async () => {
        if (confirm(text("textRemove", { name: preset.name }))) { await call("DELETE", `/presets/${token}`); loadPresets(); }
      });
      list.append(row);
    }
  }

  root.querySelector("[data-ptz-preset-form]").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = ev.target.elements.name;
    const name = input.value.trim();
    if (!name) return;
    await call("POST", "/presets", { name });
    input.value = "";
    loadPresets();
  });
  root.querySelector("[data-ptz-home]").addEventListener("click", () => call("POST", "/home").catch(() => {}));
  root.querySelector("[data-ptz-set-home]").addEventListener("click", () => call("PUT", "/home").catch(() => {}));

  if (video) {
    video.addEventListener("click", (ev) => {
      if (!caps || !caps.relative) return;
      const rect = video.getBoundingClientRect();
      const x = ((ev.clientX - rect.left) / rect.width) * 2 - 1;
      const y = 1 - ((ev.clientY - rect.top) / rect.height) * 2;
      const clamp = (v) => Math.max(-1, Math.min(1, v));
      call("POST", "/relative", { pan: clamp(x * CENTRE_GAIN), tilt: clamp(y * CENTRE_GAIN) }).catch(() => {});
    });
  }

  connect();
})();
