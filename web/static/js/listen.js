// Listening: the camera's own sound (an intercom panel's microphone) on the live page.
//
// "Sound on" opens the listen WebSocket (/api/v1/cameras/ID/listen): a JSON "init" message (codec,
// MIME type), the binary init segment, then one AAC fragment per 64 ms, appended to a MediaSource
// played by a hidden <audio>. Playback is kept near the live edge (a seek when more than MAX_LAG_S
// behind) and old buffer trimmed. "Sound off" closes the socket, and the server stops the camera's
// audio ffmpeg once nobody listens. Figures for tests are kept on window.vmsListen.
"use strict";

(() => {
  const MAX_LAG_S = 1.0;
  const EDGE_S = 0.3;
  const KEEP_S = 10;

  class Listener {
    constructor(section) {
      this.section = section;
      this.url = section.dataset.listenSrc;
      this.button = section.querySelector("[data-listen-button]");
      this.status = section.querySelector("[data-talk-status]");
      this.on = false;
      this.stats = { state: "off", fragments: 0, time: 0, codec: null };
      this.stats.measure = () => this.measure();
      window.vmsListen = this.stats;
      this.button.addEventListener("click", () => (this.on ? this.stop() : this.start()));
      window.addEventListener("pagehide", () => this.stop());
    }

    text(key) { return this.section.dataset[`text${key}`] || key; }

    show(state, message) {
      this.stats.state = state;
      this.button.setAttribute("aria-pressed", this.on ? "true" : "false");
      this.button.textContent = this.on ? this.text("SoundOff") : this.text("SoundOn");
      if (message) this.status.textContent = message;
    }

    start() {
      this.on = true;
      this.show("connecting", this.text("SoundConnecting"));
      const audio = new Audio();
      audio.autoplay = true;
      const ms = new MediaSource();
      audio.src = URL.createObjectURL(ms);
      this.audio = audio;
      this.ms = ms;
      this.queue = [];
      this.sb = null;
      this.gotInit = false;
      if (!this.ctx) {  // an analyser for the figures; the sound goes on to the speakers
        this.ctx = new AudioContext();
        this.analyser = this.ctx.createAnalyser();
        this.analyser.fftSize = 4096;
        this.analyser.connect(this.ctx.destination);
      }
      this.ctx.resume();
      this.source = this.ctx.createMediaElementSource(audio);
      this.source.connect(this.analyser);
      ms.addEventListener("sourceopen", () => this.connect(), { once: true });
      audio.addEventListener("timeupdate", () => { this.stats.time = audio.currentTime; });
    }

    connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${this.url}`);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onmessage = (e) => {
        if (typeof e.data === "string") {
          const msg = JSON.parse(e.data);
          if (msg.type === "init") {
            if (!window.MediaSource.isTypeSupported(msg.mime)) {
              this.show("error", this.text("SoundUnsupported"));
              return;
            }
            this.stats.codec = msg.codec;
            if (!this.sb) {
              this.sb = this.ms.addSourceBuffer(msg.mime);
              this.sb.addEventListener("updateend", () => this.pump());
            }
            this.gotInit = true;
            this.show("on", this.text("SoundPlaying"));
          } else if (msg.type === "status" && !this.gotInit) {
            this.show("connecting", this.text("NoSound"));
          }
          return;
        }
        if (!this.sb) return;
        this.stats.fragments += 1;
        this.queue.push(e.data);
        this.pump();
      };
      ws.onclose = () => {
        if (this.ws === ws && this.on) this.stop(this.text("SoundEnded"));
      };
    }

    pump() {
      const sb = this.sb;
      if (!sb || sb.updating || !this.queue.length) return;
      const audio = this.audio;
      const b = sb.buffered;
      if (b.length) {
        const end = b.end(b.length - 1);
        if (end - audio.currentTime > MAX_LAG_S) audio.currentTime = end - EDGE_S;
        if (audio.currentTime - b.start(0) > KEEP_S * 2) {
          sb.remove(b.start(0), audio.currentTime - KEEP_S);
          return;
        }
      }
      try {
        sb.appendBuffer(this.queue.shift());
      } catch (err) {
        this.stop(`${this.text("SoundEnded")} ${err}`);
        return;
      }
      if (audio.paused) audio.play().catch(() => {});
    }

    // The strongest frequency the speakers are getting now (Hz), for tests.
    measure() {
      if (!this.analyser) return null;
      const bins = new Float32Array(this.analyser.frequencyBinCount);
      this.analyser.getFloatFrequencyData(bins);
      let best = 1;
      for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
      return { hz: (best * this.ctx.sampleRate) / this.analyser.fftSize, db: bins[best] };
    }

    stop(message) {
      if (!this.on) return;
      this.on = false;
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(1000, "sound off");
      if (this.source) {
        this.source.disconnect();
        this.source = null;
      }
      if (this.audio) {
        this.audio.pause();
        URL.revokeObjectURL(this.audio.src);
        this.audio = null;
      }
      this.sb = null;
      this.show("off", message || this.text("SoundOffStatus"));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.querySelector("[data-listen-src]");
    if (!section) return;
    if (!window.MediaSource) {
      section.querySelector("[data-listen-button]").disabled = true;
      return;
    }
    new Listener(section);
  });
})();
