// Talk-back capture: the microphone's samples, low-passed and downsampled to 8 kHz 16-bit PCM.
//
// One file for two places: loaded with audioWorklet.addModule() it registers the AudioWorklet
// processor "vms-talk-capture" (frames posted to the page); loaded as a page script it only
// defines window.VmsDownsampler, which talk.js uses in its ScriptProcessor fallback.
"use strict";

(() => {
  const TAPS = 63;          // windowed-sinc low-pass, cut-off below 4 kHz (8 kHz Nyquist)
  const CUTOFF_HZ = 3400;
  const FRAME_SAMPLES = 320; // 40 ms at 8 kHz per posted frame

  class Downsampler {
    constructor(inputRate, outputRate = 8000) {
      this.ratio = inputRate / outputRate;
      const fc = CUTOFF_HZ / inputRate;
      const mid = (TAPS - 1) / 2;
      const taps = new Float32Array(TAPS);
      let sum = 0;
      for (let k = 0; k < TAPS; k++) {
        const x = k - mid;
        const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
        const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / (TAPS - 1));
        taps[k] = sinc * hann;
        sum += taps[k];
      }
      for (let k = 0; k < TAPS; k++) taps[k] /= sum;
      this.taps = taps;
      this.buf = new Float32Array(0);  // input not yet consumed
      this.pos = 0;                     // next output's position in buf
      this.out = new Int16Array(FRAME_SAMPLES);
      this.fill = 0;
    }

    // Feed Float32 samples; returns the complete 16-bit frames (ArrayBuffers) now ready.
    push(samples) {
      const joined = new Float32Array(this.buf.length + samples.length);
      joined.set(this.buf);
      joined.set(samples, this.buf.length);
      const frames = [];
      const taps = this.taps;
      let pos = this.pos;
      while (Math.floor(pos) + TAPS <= joined.length) {
        const start = Math.floor(pos);
        let acc = 0;
        for (let k = 0; k < TAPS; k++) acc += taps[k] * joined[start + k];
        const v = Math.max(-1, Math.min(1, acc));
        this.out[this.fill++] = v < 0 ? v * 0x8000 : v * 0x7fff;
        if (this.fill === FRAME_SAMPLES) {
          frames.push(this.out.slice().buffer);
          this.fill = 0;
        }
        pos += this.ratio;
      }
      const used = Math.floor(pos);
      this.buf = joined.slice(used);
      this.pos = pos - used;
      return frames;
    }
  }

  if (typeof registerProcessor === "function") {
    class Capture extends AudioWorkletProcessor {
      constructor() {
        super();
        this.down = new Downsampler(sampleRate);
      }
      process(inputs) {
        const channel = inputs[0] && inputs[0][0];
        if (channel) {
          for (const frame of this.down.push(channel)) this.port.postMessage(frame, [frame]);
        }
        return true;
      }
    }
    registerProcessor("vms-talk-capture", Capture);
  } else {
    globalThis.VmsDownsampler = Downsampler;
  }
})();
