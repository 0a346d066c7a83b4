// A scrubbable timeline drawn on a canvas: one row per camera with recorded spans, gaps and event
// markers; drag (mouse or finger) to pan, wheel, pinch or buttons to zoom (a minute to a week),
// click or tap to seek. Gaps are drawn by kind: a recording gap (camera lost, stall, disk full …)
// in red, time that was never meant to be recorded (before the first footage, outside a schedule)
// as a faint hatch, time deleted by retention in grey, and the future after "now" hatched; hovering
// (or tapping) reports what lies under the pointer, for the page's tooltip and preview picture.
// While the user pans or zooms, the view is theirs: `follow` turns off and nothing moves it back to
// the playhead until a seek or the page's "Playhead" button turns following on again.
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
    span: "#2e8b57", gap: "#d9534f", purged: "#9e9e9e", none: "#c9ced6", live: "#8fd19e",
    future: "rgba(120, 130, 145, 0.18)", motion: "#f0ad4e", doorbell: "#337ab7", plate: "#8e44ad", tamper: "#c0392b", relay: "#16a085",
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
      this.onHover = options.onHover || (() => {});   // (hit | null, clientX, clientY)
      this.onTap = options.onTap || (() => {});       // (hit, clientX, clientY): touch taps
      this.onFollow = options.onFollow || (() => {});  // (follow: boolean)
      this.follow = true;
      this.dragging = false;
      this.nowMs = null;
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

    // the server's "now" (UTC ms): later is the future, drawn hatched and never a gap
    setNow(t) { this.nowMs = t; }

    setFollow(on) {
      if (this.follow === on) return;
      this.follow = on;
      this.canvas.dataset.follow = on ? "1" : "0";
      this.onFollow(on);
    }

    // keep the playhead in view while following; never while the user holds the view
    reveal(t) {
      if (!this.follow || this.dragging) return;
      if (t < this.viewStart || t > this.viewStart + this.viewSpan) {
        this.setView(t - this.viewSpan * 0.1, this.viewSpan);
      }
    }

    rowAt(y) {
      const rowsH = this.height - 22;
      if (y < 0 || y > rowsH) return -1;
      const n = Math.max(1, this.rows.length);
      return Math.min(n - 1, Math.floor(y / (rowsH / n)));
    }

    // what lies at instant t on row i: {t, row, camera, type: "span"|"gap"|"future"|"unknown",
    // reason, kind, start, end}
    hit(t, i) {
      const row = this.rows[i];
      if (!row) return null;
      const base = { t, row: i, camera: row.id };
      if (this.nowMs != null && t >= this.nowMs) return { ...base, type: "future", start: this.nowMs, end: null };
      for (const [s, e] of row.spans) if (t >= s && t < e) return { ...base, type: "span", start: s, end: e };
      for (const [s, e, reason, kind] of row.gaps) {
        if (t >= s && t < e) return { ...base, type: "gap", reason, kind: kind || "gap", start: s, end: e };
      }
      return { ...base, type: "unknown", start: null, end: null };
    }

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
      const pointers = new Map();   // pointerId -> {x, y}
      let down = null;              // one pointer: {x, start, moved, type}
      let pinch = null;             // two pointers: {dist, span, anchor}
      const local = (ev) => {
        const rect = c.getBoundingClientRect();
        return { x: ev.clientX - rect.left, y: ev.clientY - rect.top };
      };
      const hitAt = (ev) => {
        const p = local(ev);
        return this.hit(this.tOf(p.x), this.rowAt(p.y));
      };
      const pinchState = () => {
        const [a, b] = [...pointers.values()];
        const rect = c.getBoundingClientRect();
        const mid = (a.x + b.x) / 2 - rect.left;
        return { dist: Math.max(10, Math.abs(a.x - b.x)), span: this.viewSpan, anchor: this.tOf(mid) };
      };
      c.addEventListener("pointerdown", (ev) => {
        pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
        c.setPointerCapture(ev.pointerId);
        if (pointers.size === 2) {
          pinch = pinchState();
          down = null;
          this.dragging = true;
          this.setFollow(false);
          return;
        }
        down = { x: ev.clientX, start: this.viewStart, moved: false, type: ev.pointerType };
      });
      c.addEventListener("pointermove", (ev) => {
        if (pointers.has(ev.pointerId)) pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
        if (pinch && pointers.size === 2) {
          const [a, b] = [...pointers.values()];
          const rect = c.getBoundingClientRect();
          const dist = Math.max(10, Math.abs(a.x - b.x));
          const span = Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, pinch.span * pinch.dist / dist));
          const ratio = ((a.x + b.x) / 2 - rect.left) / this.width;
          this.viewSpan = span;
          this.viewStart = pinch.anchor - ratio * span;
          this._viewChanged(false);
          return;
        }
        if (down) {
          const dx = ev.clientX - down.x;
          if (!down.moved && Math.abs(dx) > 4) {
            down.moved = true;
            this.dragging = true;
            c.classList.add("dragging");
            this.setFollow(false);
          }
          if (down.moved) {
            this.viewStart = down.start - (dx / this.width) * this.viewSpan;
            this._viewChanged(false);
          }
        }
        if (ev.pointerType === "mouse" || down) this.onHover(hitAt(ev), ev.clientX, ev.clientY);
      });
      const finish = (ev) => {
        pointers.delete(ev.pointerId);
        if (pinch) {
          if (pointers.size < 2) {
            pinch = null;
            down = null;
            this.dragging = false;
            this._viewChanged(true);
          }
          return;
        }
        if (!down) return;
        const { moved, type } = down;
        down = null;
        this.dragging = false;
        c.classList.remove("dragging");
        if (moved) {
          this._viewChanged(true);
          if (type !== "mouse") this.onHover(null);   // a finger lifted: no hover remains
        } else if (ev.type === "pointerup") {
          const hit = hitAt(ev);
          this.setFollow(true);
          this.onSeek(this.tOf(local(ev).x));
          if (type !== "mouse" && hit) this.onTap(hit, ev.clientX, ev.clientY);
        }
      };
      c.addEventListener("pointerup", finish);
      c.addEventListener("pointercancel", finish);
      c.addEventListener("pointerleave", (ev) => { if (ev.pointerType === "mouse" && !down) this.onHover(null); });
      c.addEventListener("wheel", (ev) => {
        ev.preventDefault();
        this.setFollow(false);
        const rect = c.getBoundingClientRect();
        this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, this.tOf(ev.clientX - rect.left));
      }, { passive: false });
    }

    // the view moved under the user's hand: redraw now, tell the page (it loads the rows for the
    // new range, debounced) — `final` at the end of a gesture
    _viewChanged(final) {
      this.canvas.dataset.viewStart = String(Math.round(this.viewStart));
      this.canvas.dataset.viewEnd = String(Math.round(this.viewStart + this.viewSpan));
      this.draw();
      if (final || !this._lastViewNote || performance.now() - this._lastViewNote > 200) {
        this._lastViewNote = performance.now();
        this.onView(this.viewStart, this.viewStart + this.viewSpan);
      }
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
        // by kind: a recording gap is red; time never meant to be recorded a faint hatch; time
        // deleted by the retention policy grey; the open tail of a live run pale green
        for (const [s, e, , kind] of row.gaps) {
          if (kind === "not_recorded") this._hatch(s, e, y + hh * 0.3, hh * 0.4, COLORS.none);
          else if (kind === "purged") this._bar(s, e, y + hh * 0.35, hh * 0.3, COLORS.purged);
          else if (kind === "recording") this._bar(s, e, y, hh, COLORS.live);
          else this._bar(s, e, y + hh * 0.25, hh * 0.5, COLORS.gap);
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
      if (this.nowMs != null && this.xOf(this.nowMs) < w) {
        const x = Math.max(0, this.xOf(this.nowMs));
        ctx.fillStyle = COLORS.future;
        ctx.fillRect(x, 0, w - x, rowsH);
        this._hatch(this.nowMs, this.viewStart + this.viewSpan + 1, 0, rowsH, COLORS.none);
      }
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

    // diagonal hatching over [s, e) in a band: "nothing here, and that is expected"
    _hatch(s, e, y, hh, color) {
      const x1 = Math.max(0, this.xOf(s)), x2 = Math.min(this.width, this.xOf(e));
      if (x2 <= 0 || x1 >= this.width) return;
      const ctx = this.ctx;
      ctx.save();
      ctx.beginPath(); ctx.rect(x1, y, Math.max(1, x2 - x1), hh); ctx.clip();
      ctx.strokeStyle = color;
      ctx.lineWidth = 1;
      ctx.beginPath();
      const start = Math.floor((x1 - hh) / 6) * 6;
      for (let x = start, guard = 0; x < x2 && guard < 2000; x += 6, guard++) {
        ctx.moveTo(x, y + hh); ctx.lineTo(x + hh, y);
      }
      ctx.stroke();
      ctx.restore();
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
