// The doorbell ring, on every page of a user who may open doors (web/templates/ring.html).
//
// One tab of the browser holds the live event feed (GET /api/v1/events/stream): the tabs elect it
// with the Web Locks API and pass what it hears to the others over a BroadcastChannel (so many
// open tabs do not use up the browser's six connections to the server); without those APIs each
// tab listens itself. A "doorbell" event rings: a banner with the camera's live picture (a JPEG
// refreshed every second: works on every phone, no Media Source needed), "Open door" buttons
// (door.js), "I've got it" (POST /api/v1/rings/ID/answer) and a tone made with WebAudio (browsers
// allow sound once the page has had a tap or a key press). A Web Notification is shown too where
// the user allowed them. The ring stops when it is answered anywhere ("answered" on the feed), is
// dismissed, or after [intercom] ring_seconds. A page opened during a ring shows it
// (GET /api/v1/rings).
"use strict";

(() => {
  const template = document.getElementById("ring-template");
  if (!template) return;
  const csrf = template.dataset.csrf || "";
  const rings = new Map();   // event id -> {banner, timers, stop}
  let ringSeconds = 30;
  let offsetUs = 0;          // server clock minus ours
  let audio = null;

  const nowUs = () => Date.now() * 1000 + offsetUs;
  const text = (name, values) => {
    let t = template.dataset["text" + name] || "";
    for (const [k, v] of Object.entries(values || {})) t = t.replace(`{${k}}`, v);
    return t;
  };

  function audioContext() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!audio) audio = new Ctx();
    return audio;
  }
  const unlock = () => { const ctx = audioContext(); if (ctx && ctx.state === "suspended") ctx.resume(); };
  document.addEventListener("pointerdown", unlock, { capture: true });
  document.addEventListener("keydown", unlock, { capture: true });

  // Two falling tones, repeated every two seconds while ringing; returns a stop function.
  function tone(banner) {
    const ctx = audioContext();
    if (!ctx) { banner.dataset.sound = "none"; return () => {}; }
    const chime = () => {
      if (ctx.state !== "running") { banner.dataset.sound = "blocked"; return; }
      banner.dataset.sound = "playing";
      const t0 = ctx.currentTime;
      [[880, 0], [660, 0.35]].forEach(([freq, at]) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t0 + at);
        gain.gain.exponentialRampToValueAtTime(0.3, t0 + at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.3);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t0 + at);
        osc.stop(t0 + at + 0.32);
      });
    };
    if (ctx.state === "suspended") ctx.resume().then(chime, chime); else chime();
    const timer = setInterval(chime, 2000);
    return () => clearInterval(timer);
  }

  function notify(row) {
    if (!("Notification" in window) || Notification.permission !== "granted") return null;
    try {
      const n = new Notification(text("Ringing", { name: row.camera_name }), {
        body: text("NotifyBody"), tag: `vms-ring-${row.id}`, requireInteraction: true });
      n.onclick = () => { window.focus(); n.close(); };
      return n;
    } catch (e) {
      return null;  // Android Chrome: only service workers may notify; the banner stays
    }
  }

  function stop(id, answeredBy) {
    const ring = rings.get(id);
    if (!ring || ring.stopped) return;
    ring.stopped = true;
    ring.stopSound();
    clearTimeout(ring.timeout);
    clearTimeout(ring.refresh);
    if (ring.notification) ring.notification.close();
    if (answeredBy) {
      ring.banner.dataset.state = "answered";
      ring.banner.querySelector(".ring-title").textContent = text("Answered", { user: answeredBy });
      setTimeout(() => ring.banner.remove(), 3000);
    } else {
      ring.banner.remove();
    }
    if (![...rings.values()].some((r) => !r.stopped)) document.documentElement.dataset.ringing = "no";
  }

  function ring(row) {
    if (rings.has(row.id)) return;
    const leftMs = (row.start_us + ringSeconds * 1e6 - nowUs()) / 1000;
    if (leftMs <= 0) return;
    const banner = template.content.firstElementChild.cloneNode(true);
    banner.dataset.eventId = row.id;
    banner.dataset.cameraId = row.camera_id;
    banner.querySelector(".ring-title").textContent = text("Ringing", { name: row.camera_name });
    const picture = banner.querySelector(".ring-picture");
    const entry = { banner, stopped: false, stopSound: () => {} };
    const refresh = () => {
      if (entry.stopped) return;
      picture.src = `/api/v1/cameras/${row.camera_id}/snapshot?stream=sub&t=${Date.now()}`;
    };
    picture.addEventListener("load", () => { entry.refresh = setTimeout(refresh, 1000); });
    picture.addEventListener("error", () => { entry.refresh = setTimeout(refresh, 2000); });
    refresh();
    const door = banner.querySelector(".ring-door");
    window.vmsDoor.attach(door, row.camera_id, csrf, () => setTimeout(() => stop(row.id), 1500));
    banner.querySelector(".ring-answer").addEventListener("click", async () => {
      const resp = await fetch(`/api/v1/rings/${row.id}/answer`, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
      stop(row.id, resp.ok ? (await resp.json()).username : null);
    });
    banner.querySelector(".ring-close").addEventListener("click", () => stop(row.id));
    let holder = document.getElementById("ring-stack");
    if (!holder) {
      holder = document.createElement("div");
      holder.id = "ring-stack";
      document.body.prepend(holder);
      place(holder);
      if (window.visualViewport) {
        window.visualViewport.addEventListener("resize", () => place(holder));
        window.visualViewport.addEventListener("scroll", () => place(holder));
      }
    }
    holder.append(banner);
    rings.set(row.id, entry);
    entry.stopSound = tone(banner);
    entry.notification = notify(row);
    entry.timeout = setTimeout(() => stop(row.id), leftMs);
    document.documentElement.dataset.ringing = "yes";
  }

  // Over what the user sees: on a phone the page may be wider than the screen, or zoomed.
  function place(holder) {
    const vv = window.visualViewport;
    if (!vv) return;
    const width = Math.min(640, vv.width - 16);
    holder.style.left = `${vv.offsetLeft + (vv.width - width) / 2}px`;
    holder.style.top = `${vv.offsetTop + 8}px`;
    holder.style.width = `${width}px`;
  }

  function handle(message) {
    if (message.kind === "event" && message.row.type === "doorbell") ring(message.row);
    else if (message.kind === "answered") stop(message.row.id, message.row.username);
  }

  function listen(onMessage) {
    const source = new EventSource("/api/v1/events/stream");
    source.addEventListener("event", (e) => onMessage({ kind: "event", row: JSON.parse(e.data) }));
    source.addEventListener("answered", (e) => onMessage({ kind: "answered", row: JSON.parse(e.data) }));
    source.addEventListener("open", () => { document.documentElement.dataset.ringFeed = "open"; });
    return source;
  }

  async function start() {
    try {
      const resp = await fetch("/api/v1/rings", { credentials: "same-origin" });
      if (resp.ok) {
        const state = await resp.json();
        ringSeconds = state.ring_seconds;
        offsetUs = state.now_us - Date.now() * 1000;
        state.rings.forEach((row) => ring({ ...row, type: "doorbell" }));
      }
    } catch (e) { /* the feed still rings */ }
    if (navigator.locks && window.BroadcastChannel) {
      const channel = new BroadcastChannel("vms-ring");
      channel.onmessage = (e) => handle(e.data);
      document.documentElement.dataset.ringFeed = "follower";
      navigator.locks.request("vms-ring-feed", () => new Promise(() => {
        listen((message) => { handle(message); channel.postMessage(message); });
      }));
    } else {
      listen(handle);
    }
    const ask = document.querySelector("[data-ring-notify]");
    if (ask && "Notification" in window && Notification.permission === "default") {
      ask.hidden = false;
      ask.addEventListener("click", () => Notification.requestPermission().then(() => { ask.hidden = true; }));
    }
  }

  document.documentElement.dataset.ringing = "no";
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
