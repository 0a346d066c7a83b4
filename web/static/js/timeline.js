// A scrubbable timeline drawn on a canvas: one row per camera with recorded spans, gaps and event
// markers; drag to pan, wheel or buttons to zoom (a minute to a week), click to seek.
// Times are UTC milliseconds internally; labels use Intl.DateTimeFormat in the site's time zone,
// so DST changes show as they happened (an autumn hour appears twice, a spring hour not at all).
"use strict";

(function () {
  const MIN_SPAN_MS = 60 * 1000;
  const MAX_SPAN_MS = 7 * 24 * 3600 * 1000;
  const STEPS_MS = [1, 2, 5, 10, 15, 30].map((s) => s * 1000)
    .concat([1, 2, 5, 10, 15, 30].map((m) => m * 60000))
    .concat([1, 2, 3, 6, 12].map((h) => h * 3600000))
    .concat([86400000, 2 * 86400000]);
  const COLORS = {
    span: "#2e8b57", gap: "#d9534f", purged: "#9e9e9e", motion: "#f0ad4e", doorbell: "#337ab7", plate: "#8e44ad", tamper: "#c0392b", relay: "#16a085",
    other: "#555555", hold: "#1f3a93", cursor: "#000000", axis: "#666666", grid: "#e3e3e3", text: "#222222",
    selection: "rgba(51, 122, 183, 0.35)", selectionEdge: "#337ab7",
  };

  function tzOffsetMs(formatter, t) {
    // offset of the zone at instant t: local wall time read as UTC, minus the instant
    const parts = {};
    for (const p of formatter.formatToParts(new Date(t))) parts[p.type] = p.value;
    const local = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24,
      +parts.minute, +parts.second);
    return local - (t - (((t % 1000) + 1000) % 1000));
  }

  class Timeline {
    constructor(canvas, options) {
      this.canvas = canvas;
      this.timeZone = options.timeZone || "UTC";
      this.onSeek = options.onSeek || (() => {});
      this.onView = options.onView || (() => {});
      // [{id, name, spans:[[s,e]], gaps:[[s,e,reason]], events:[...], holds:[[s,e,reason]]}]
      this.rows = [];
      this.cursorMs = null;
      this.viewStart = Date.now() - 3600000;
      this.viewSpan = 2 * 3600000;
      this.partsFmt = new Intl.DateTimeFormat("en-US", {
        timeZone: this.timeZone, hourCycle: "h23", year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
      const lang = document.documentElement.lang || undefined;
      this.fmtTime = new Intl.DateTimeFormat(lang, { timeZone: this.timeZone, hour: "2-digit",
        minute: "2-digit", hourCycle: "h23" });
      this.fmtSec = new Intl.DateTimeFormat(lang, { timeZone: this.timeZone, hour: "2-digit",
        minute: "2-digit", second: "2-digit", hourCycle: "h23" });
      this.fmtDay = new Intl.DateTimeFormat(lang, { timeZone: this.timeZone, day: "2-digit",
        month: "short" });
      this.fmtFull = new Intl.DateTimeFormat(lang, { timeZone: this.timeZone, year: "numeric",
        month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
        hourCycle: "h23", timeZoneName: "short" });
      this._bind();
      this._resize();
      window.addEventListener("resize", () => { this._resize(); this.draw(); });
    }

    offsetMs(t) { return tzOffsetMs(this.partsFmt, t); }

    format(t) { return this.fmtFull.format(new Date(t)); }

    // UTC instant of local midnight of a "YYYY-MM-DD" date in the site's zone
    localMidnight(dateText) {
      const [y, m, d] = dateText.split("-").map(Number);
      const guess = Date.UTC(y, m - 1, d);
      let t = guess - this.offsetMs(guess);
      t = guess - this.offsetMs(t);
      return t;
    }

    localDate(t) {
      const parts = {};
      for (const p of this.partsFmt.formatToParts(new Date(t))) parts[p.type] = p.value;
      return `${parts.year}-${parts.month}-${parts.day}`;
    }

    setRows(rows) { this.rows = rows; this.draw(); }

    setCursor(t) { this.cursorMs = t; this.draw(); }

    // the range marked for export ([start, end] UTC ms, or null), drawn as a band over the rows
    setSelection(range) { this.selection = range; this.draw(); }

    setView(start, span) {
      this.viewSpan = Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, span));
      this.viewStart = start;
      this.canvas.dataset.viewStart = String(Math.round(this.viewStart));
      this.canvas.dataset.viewEnd = String(Math.round(this.viewStart + this.viewSpan));
      this.draw();
      this.onView(this.viewStart, this.viewStart + this.viewSpan);
    }

    centerOn(t) { this.setView(t - this.viewSpan / 2, this.viewSpan); }

    zoom(factor, anchorMs) {
      const anchor = anchorMs == null ? this.viewStart + this.viewSpan / 2 : anchorMs;
      const span = Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, this.viewSpan * factor));
      const ratio = (anchor - this.viewStart) / this.viewSpan;
      this.setView(anchor - ratio * span, span);
    }

    xOf(t) { return ((t - this.viewStart) / this.viewSpan) * this.width; }

    tOf(x) { return this.viewStart + (x / this.width) * this.viewSpan; }

    _resize() {
      const ratio = window.devicePixelRatio || 1;
      this.width = this.canvas.clientWidth || 800;
      this.height = this.canvas.clientHeight || 120;
      this.canvas.width = Math.round(this.width * ratio);
      this.canvas.height = Math.round(this.height * ratio);
      this.ctx = this.canvas.getContext("2d");
      this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    }

    _bind() {
      const c = this.canvas;
      let down = null;
      c.addEventListener("pointerdown", (ev) => {
        down = { x: ev.clientX, start: this.viewStart, moved: false };
        c.setPointerCapture(ev.pointerId);
      });
      c.addEventListener("pointermove", (ev) => {
        if (!down) return;
        const dx = ev.clientX - down.x;
        if (Math.abs(dx) > 4) { down.moved = true; c.classList.add("dragging"); }
        if (down.moved) {
          this.viewStart = down.start - (dx / this.width) * this.viewSpan;
          this.draw();
        }
      });
      const finish = (ev) => {
        if (!down) return;
        const wasDrag = down.moved;
        down = null;
        c.classList.remove("dragging");
        if (wasDrag) {
          this.setView(this.viewStart, this.viewSpan);
        } else if (ev.type === "pointerup") {
          const rect = c.getBoundingClientRect();
          this.onSeek(this.tOf(ev.clientX - rect.left));
        }
      };
      c.addEventListener("pointerup", finish);
      c.addEventListener("pointercancel", finish);
      c.addEventListener("wheel", (ev) => {
        ev.preventDefault();
        const rect = c.getBoundingClientRect();
        this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, this.tOf(ev.clientX - rect.left));
      }, { passive: false });
    }

    _tickStep() {
      const target = this.viewSpan / Math.max(2, this.width / 90);
      for (const s of STEPS_MS) if (s >= target) return s;
      return STEPS_MS[STEPS_MS.length - 1];
    }

    draw() {
      const ctx = this.ctx;
      if (!ctx) return;
      const w = this.width, h = this.height;
      ctx.clearRect(0, 0, w, h);
      const axisH = 22;
      const rowsH = h - axisH;
      const n = Math.max(1, this.rows.length);
      const rowH = rowsH / n;
      // ticks (aligned to local time, labels from the true instant)
      const step = this._tickStep();
      ctx.font = "11px sans-serif";
      ctx.textBaseline = "top";
      let t = this.viewStart - step;
      const off0 = this.offsetMs(t);
      t = Math.floor((t + off0) / step) * step - off0;
      for (let guard = 0; t < this.viewStart + this.viewSpan && guard < 500; guard++, t += step) {
        const off = this.offsetMs(t);
        const aligned = Math.round((t + off) / step) * step - off;
        const x = this.xOf(aligned);
        if (x < 0) continue;
        ctx.strokeStyle = COLORS.grid;
        ctx.beginPath(); ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, rowsH); ctx.stroke();
        ctx.fillStyle = COLORS.text;
        const d = new Date(aligned);
        let label = step < 60000 ? this.fmtSec.format(d) : this.fmtTime.format(d);
        if (step >= 86400000 || this.fmtTime.format(d) === "00:00") label = this.fmtDay.format(d) + " " + label;
        ctx.fillText(label, x + 2, rowsH + 4);
      }
      this.rows.forEach((row, i) => {
        const top = i * rowH + 2;
        // holds: a thin band above the spans (evidence kept from retention)
        const holdH = Math.max(3, Math.round((rowH - 4) * 0.12));
        for (const [s, e] of row.holds || []) this._bar(s, e, top, holdH, COLORS.hold);
        const y = top + holdH + 1, hh = rowH - 4 - holdH - 1;
        // time deleted by the retention policy is grey, not the red of a recording gap
        for (const [s, e, reason] of row.gaps) {
          this._bar(s, e, y + hh * 0.35, hh * 0.3, reason === "retention" ? COLORS.purged : COLORS.gap);
        }
        for (const [s, e] of row.spans) this._bar(s, e, y, hh, COLORS.span);
        for (const ev of row.events) {
          const color = COLORS[ev.type] || COLORS.other;
          const x = this.xOf(ev.start_ms);
          const x2 = ev.end_ms ? Math.max(x + 2, this.xOf(ev.end_ms)) : x + 2;
          if (x2 < 0 || x > w) continue;
          ctx.fillStyle = color;
          ctx.fillRect(x, y, x2 - x, hh * 0.3);
          ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 4, y + hh * 0.3 + 4); ctx.lineTo(x - 4, y + hh * 0.3 + 4);
          ctx.fill();
        }
        if (this.rows.length > 1) {
          ctx.fillStyle = COLORS.text;
          ctx.fillText(row.name, 4, y + 2);
        }
      });
      if (this.selection) {
        const x1 = Math.max(0, this.xOf(this.selection[0]));
        const x2 = Math.min(w, this.xOf(this.selection[1]));
        if (x2 > 0 && x1 < w) {
          ctx.fillStyle = COLORS.selection;
          ctx.fillRect(x1, 0, Math.max(2, x2 - x1), rowsH);
          ctx.strokeStyle = COLORS.selectionEdge;
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.moveTo(x1, 0); ctx.lineTo(x1, rowsH);
          ctx.moveTo(x2, 0); ctx.lineTo(x2, rowsH);
          ctx.stroke();
          ctx.lineWidth = 1;
        }
      }
      if (this.cursorMs != null) {
        const x = this.xOf(this.cursorMs);
        ctx.strokeStyle = COLORS.cursor;
        ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, rowsH); ctx.stroke();
        ctx.lineWidth = 1;
      }
      ctx.strokeStyle = COLORS.axis;
      ctx.beginPath(); ctx.moveTo(0, rowsH + 0.5); ctx.lineTo(w, rowsH + 0.5); ctx.stroke();
    }

    _bar(s, e, y, hh, color) {
      const x1 = Math.max(0, this.xOf(s)), x2 = Math.min(this.width, this.xOf(e));
      if (x2 <= 0 || x1 >= this.width) return;
      this.ctx.fillStyle = color;
      this.ctx.fillRect(x1, y, Math.max(1, x2 - x1), hh);
    }
  }

  window.VmsTimeline = Timeline;
})();
