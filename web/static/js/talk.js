// Talk-back: hold the button and speak; the microphone goes to the camera's loudspeaker.
//
// Pressing (mouse, touch, or Space/Enter on the focused button) asks for the microphone once,
// opens the talk WebSocket (/api/v1/cameras/ID/talk) and sends 8 kHz 16-bit PCM frames captured by
// an AudioWorklet (talk_worklet.js; a ScriptProcessor where AudioWorklet is missing). Releasing
// closes the socket, which ends the camera's RTSP backchannel session. Frames recorded while the
// server is still connecting wait in a small queue (at most MAX_QUEUED, the oldest dropped).
// Figures for tests are kept on window.vmsTalk.
"use strict";

(() => {
  const MAX_QUEUED = 25;  // 1 s of 40 ms frames

  class Talker {
    constructor(section) {
      this.section = section;
      this.url = section.dataset.talkSrc;
      this.button = section.querySelector("[data-talk-button]");
      this.status = section.querySelector("[data-talk-status]");
      this.ws = null;
      this.ready = false;
      this.held = false;
      this.queue = [];
      this.audio = null;
      this.stats = { state: "idle", framesSent: 0, bytesSent: 0, sessions: 0, error: null,
                     engine: null };
      window.vmsTalk = this.stats;
      this.bind();
    }

    text(key) { return this.section.dataset[`text${key}`] || key; }

    show(state, message) {
      this.stats.state = state;
      this.section.dataset.state = state;
      this.button.setAttribute("aria-pressed", state === "talking" || state === "connecting"
        ? "true" : "false");
      this.status.textContent = message;
    }

    bind() {
      const b = this.button;
      b.addEventListener("pointerdown", (e) => {
        if (e.button !== 0) return;
        e.preventDefault();
        b.setPointerCapture(e.pointerId);
        this.press();
      });
      for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
        b.addEventListener(type, () => this.release());
      }
      b.addEventListener("keydown", (e) => {
        if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); this.press(); }
      });
      b.addEventListener("keyup", (e) => {
        if (e.key === " " || e.key === "Enter") { e.preventDefault(); this.release(); }
      });
      b.addEventListener("blur", () => this.release());
      b.addEventListener("contextmenu", (e) => e.preventDefault());  // long press on phones
      window.addEventListener("pagehide", () => this.release());
    }

    async startAudio() {
      if (this.audio) return this.audio;
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
      const ctx = new AudioContext();
      await ctx.resume();
      const source = ctx.createMediaStreamSource(stream);
      const sink = ctx.createGain();
      sink.gain.value = 0;  // the graph must reach the destination to run; nothing is heard
      sink.connect(ctx.destination);
      let node;
      if (ctx.audioWorklet && window.AudioWorkletNode) {
        await ctx.audioWorklet.addModule(this.section.dataset.worklet);
        node = new AudioWorkletNode(ctx, "vms-talk-capture");
        node.port.onmessage = (e) => this.frame(e.data);
        this.stats.engine = "worklet";
      } else {
        const down = new window.VmsDownsampler(ctx.sampleRate);
        node = ctx.createScriptProcessor(2048, 1, 1);
        node.onaudioprocess = (e) => {
          for (const f of down.push(e.inputBuffer.getChannelData(0))) this.frame(f);
        };
        this.stats.engine = "script-processor";
      }
      source.connect(node);
      node.connect(sink);
      this.audio = { stream, ctx, node };
      return this.audio;
    }

    frame(buffer) {
      if (!this.ws) return;
      if (!this.ready) {
        this.queue.push(buffer);
        if (this.queue.length > MAX_QUEUED) this.queue.shift();
        return;
      }
      this.send(buffer);
    }

    send(buffer) {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send(buffer);
      this.stats.framesSent += 1;
      this.stats.bytesSent += buffer.byteLength;
    }

    async press() {
      if (this.held) return;
      this.held = true;
      this.stats.error = null;
      this.show("connecting", this.text("Connecting"));
      try {
        await this.startAudio();
      } catch (err) {
        this.held = false;
        this.stats.error = String(err);
        this.show("error", this.text("NoMic"));
        return;
      }
      if (!this.held) { this.show("idle", this.text("Idle")); return; }  // released meanwhile
      this.open();
    }

    open() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${this.url}`);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.ready = false;
      this.queue = [];
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") return;
        const msg = JSON.parse(e.data);
        if (msg.type === "ready") {
          this.ready = true;
          this.stats.sessions += 1;
          for (const f of this.queue) this.send(f);
          this.queue = [];
          this.show("talking", this.text("Talking"));
        } else if (msg.type === "error") {
          this.stats.error = msg.code;
          const known = { no_backchannel: "NoBackchannel", codec: "NoBackchannel" }[msg.code];
          this.show("error", known ? this.text(known) : `${this.text("Failed")} ${msg.message}`);
        } else if (msg.type === "ended") {
          this.show("ended", `${this.text("Ended")} ${msg.reason}`);
        }
      };
      ws.onclose = () => {
        if (this.ws === ws) { this.ws = null; this.ready = false; }
        if (this.stats.state === "talking" || this.stats.state === "connecting") {
          this.show("idle", this.text("Idle"));
        }
      };
    }

    release() {
      if (!this.held) return;
      this.held = false;
      const ws = this.ws;
      this.ws = null;
      this.ready = false;
      if (ws) ws.close(1000, "released");
      if (this.stats.state === "talking" || this.stats.state === "connecting") {
        this.show("idle", this.text("Idle"));
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.querySelector("[data-talk-src]");
    if (!section) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      section.querySelector("[data-talk-status]").textContent = section.dataset.textInsecure;
      section.querySelector("[data-talk-button]").disabled = true;
      return;
    }
    new Talker(section);
  });
})();
