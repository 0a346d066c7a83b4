// "Open door" buttons: one per relay output of a camera, each pulsing it through
// POST /api/v1/cameras/ID/relays/TOKEN/pulse. Every element with data-door-camera gets them at
// load; ring.js calls window.vmsDoor.attach() for the ring banner. Texts come from the element's
// data-text-* attributes (translated by the server).
"use strict";

(() => {
  if (window.vmsDoor) return;  // loaded by both ring.html and door_live.html
  async function pulse(cameraId, token, csrf) {
    const resp = await fetch(`/api/v1/cameras/${cameraId}/relays/${encodeURIComponent(token)}/pulse`, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
    });
    let body = {};
    try { body = await resp.json(); } catch (e) { /* not JSON */ }
    return { status: resp.status, body, retryAfter: resp.headers.get("Retry-After") };
  }

  // Fill `box` with the camera's door buttons; onOpened(result) after a successful pulse.
  async function attach(box, cameraId, csrf, onOpened) {
    const text = (name, values) => {
      let t = box.dataset["text" + name] || "";
      for (const [k, v] of Object.entries(values || {})) t = t.replace(`{${k}}`, v);
      return t;
    };
    let relays = [];
    try {
      const resp = await fetch(`/api/v1/cameras/${cameraId}/relays`, { credentials: "same-origin" });
      if (resp.ok) relays = (await resp.json()).relays || [];
    } catch (e) { relays = []; }
    box.replaceChildren();
    box.hidden = relays.length === 0;
    const status = document.createElement("span");
    status.className = "door-status";
    status.setAttribute("role", "status");
    relays.forEach((relay, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "door-open";
      button.dataset.relay = relay.token;
      button.textContent = text("Open") + (relays.length > 1 ? ` ${i + 1}` : "");
      button.addEventListener("click", async () => {
        button.disabled = true;
        status.textContent = text("Opening");
        box.dataset.state = "opening";
        try {
          const r = await pulse(cameraId, relay.token, csrf);
          if (r.status === 200) {
            status.textContent = text("Opened");
            box.dataset.state = "opened";
            if (onOpened) onOpened(r.body);
          } else if (r.status === 429) {
            status.textContent = text("Wait", { seconds: r.retryAfter || "60" });
            box.dataset.state = "limited";
          } else {
            const reason = (r.body.error && r.body.error.message) || String(r.status);
            status.textContent = text("Failed", { reason });
            box.dataset.state = "failed";
          }
        } catch (e) {
          status.textContent = text("Failed", { reason: String(e) });
          box.dataset.state = "failed";
        } finally {
          button.disabled = false;
        }
      });
      box.append(button);
    });
    box.append(status);
    box.dataset.ready = "yes";
  }

  window.vmsDoor = { attach };
  document.addEventListener("DOMContentLoaded", () => {
    for (const box of document.querySelectorAll("[data-door-camera]")) {
      attach(box, box.dataset.doorCamera, box.dataset.csrf || "");
    }
    // missed calls: a ring whose instant was not recorded (yet) says so instead of a broken image
    for (const img of document.querySelectorAll("img.call-snapshot")) {
      const missing = () => {
        const note = document.createElement("span");
        note.className = "call-snapshot call-snapshot-missing";
        note.textContent = img.dataset.textMissing || "";
        img.replaceWith(note);
      };
      if (img.complete && img.naturalWidth === 0) missing();
      else img.addEventListener("error", missing);
    }
  });
})();
