/* workbench report: draws the embedded plotly figures and the LSTMVis-style trajectory
 * views (threshold + brush selection computed on typed arrays, only the window drawn).
 * Public API for tests and power users: window.wbReport. No network access. */
(function () {
  "use strict";
  var COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                 "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#7f7f7f"];
  var VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d", "": "\u2205"};

  function spec(el) { return JSON.parse(document.getElementById(el.dataset.spec).textContent); }

  function drawFigures() {
    var els = document.querySelectorAll(".wb-plot");
    for (var i = 0; i < els.length; i++) {
      var s = spec(els[i]);
      window.Plotly.newPlot(els[i], s.data, s.layout,
        {responsive: true, displaylogo: false, showLink: false, showSendToCloud: false});
    }
  }

  function decode(s) {
    var bin = atob(s.q), n = bin.length, vals = new Float32Array(n);
    var scale = (s.hi - s.lo) / 255;
    for (var i = 0; i < n; i++) vals[i] = s.lo + bin.charCodeAt(i) * scale;
    return vals;  // unit-major: vals[u * time + t]
  }

  /* LSTMVis rule: on (>= threshold) at every step of [start, end), off (< threshold) on the
   * pad[0] steps before and pad[1] steps after (steps outside the sequence count as off). */
  function selectCells(vals, time, units, start, end, thr, left, right) {
    var out = [], a = Math.max(0, start - left), b = Math.min(time, end + right);
    for (var u = 0; u < units; u++) {
      var base = u * time, ok = true, t;
      for (t = start; t < end && ok; t++) ok = vals[base + t] >= thr;
      for (t = a; t < start && ok; t++) ok = vals[base + t] < thr;
      for (t = end; t < b && ok; t++) ok = vals[base + t] < thr;
      if (ok) out.push(u);
    }
    return out;
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* One trajectory view in `root`. `s` is the embedded spec (read from the page when omitted);
   * `onChange(selected, brushRange, threshold, pad)` is called after every selection update
   * (a notebook widget can sync it back to Python). */
  function Trajectory(root, s, onChange) {
    var self = this;
    s = s || spec(root);
    this.onChange = onChange || null;
    this.root = root; this.time = s.time; this.units = s.units; this.tokens = s.tokens;
    this.vals = decode(s); this.lo = s.lo; this.hi = s.hi;
    this.threshold = s.threshold; this.pad = s.pad.slice();
    this.width = Math.min(this.time, 120); this.start = 0;
    this.brushRange = null; this.selected = []; this.lastMs = 0;
    var c = el("div", {"class": "wb-controls"});
    var step = ((s.hi - s.lo) / 255).toPrecision(2);
    this.thr = el("input", {type: "range", min: s.lo, max: s.hi, step: step, value: s.threshold});
    this.thrNum = el("input", {type: "number", step: step, value: s.threshold});
    this.left = el("input", {type: "number", min: 0, value: s.pad[0]});
    this.right = el("input", {type: "number", min: 0, value: s.pad[1]});
    this.pos = el("input", {type: "range", min: 0, max: Math.max(0, this.time - this.width), value: 0});
    this.win = el("input", {type: "number", min: 5, max: this.time, value: this.width});
    var items = [["threshold", this.thr], ["", this.thrNum], ["pad before", this.left],
                 ["pad after", this.right], ["position", this.pos], ["steps shown", this.win]];
    items.forEach(function (p) {
      var l = el("label", {}, p[0] ? p[0] + " " : ""); l.appendChild(p[1]); c.appendChild(l);
    });
    c.appendChild(el("span", {"class": "wb-name"}, s.name + " [" + s.time + " steps x " + s.units + " units]"));
    this.canvas = el("canvas", {height: 300});
    this.list = el("div", {"class": "wb-selected"}, "Brush a token range to select units.");
    root.appendChild(c); root.appendChild(this.canvas); root.appendChild(this.list);
    this.thr.addEventListener("input", function () { self.setThreshold(+self.thr.value); });
    this.thrNum.addEventListener("change", function () { self.setThreshold(+self.thrNum.value); });
    this.left.addEventListener("change", function () { self.setPad(+self.left.value, +self.right.value); });
    this.right.addEventListener("change", function () { self.setPad(+self.left.value, +self.right.value); });
    this.pos.addEventListener("input", function () { self.scroll(+self.pos.value); });
    this.win.addEventListener("change", function () { self.setWindow(+self.win.value); });
    var drag = null;
    this.canvas.addEventListener("mousedown", function (ev) { drag = self.stepAt(ev); });
    this.canvas.addEventListener("mousemove", function (ev) {
      if (drag === null) return;
      var t = self.stepAt(ev);
      self.brushRange = [Math.min(drag, t), Math.max(drag, t) + 1]; self.draw();
    });
    window.addEventListener("mouseup", function (ev) {
      if (drag === null) return;
      var t = self.stepAt(ev), a = drag; drag = null;
      self.brush(Math.min(a, t), Math.max(a, t) + 1);
    });
    window.addEventListener("resize", function () { self.draw(); });
    this.draw();
  }

  Trajectory.prototype.geometry = function () {
    var w = Math.max(200, this.root.clientWidth || 800);
    return {w: w, h: 300, left: 50, right: 10, top: 10, plot: 220};
  };
  Trajectory.prototype.stepAt = function (ev) {
    var g = this.geometry(), r = this.canvas.getBoundingClientRect();
    var x = (ev.clientX - r.left - g.left) / ((g.w - g.left - g.right) / this.width);
    return Math.max(0, Math.min(this.time - 1, this.start + Math.floor(x)));
  };
  Trajectory.prototype.update = function () {
    var t0 = performance.now();
    if (this.brushRange) {
      this.selected = selectCells(this.vals, this.time, this.units, this.brushRange[0],
        this.brushRange[1], this.threshold, this.pad[0], this.pad[1]);
    } else { this.selected = []; }
    this.lastMs = performance.now() - t0;
    if (this.onChange) this.onChange(this.selected.slice(), this.brushRange, this.threshold, this.pad.slice());
    if (this.brushRange) {
      this.list.textContent = this.selected.length + " selected unit" +
        (this.selected.length === 1 ? "" : "s") + " for steps [" + this.brushRange[0] + ", " +
        this.brushRange[1] + "): " + this.selected.slice(0, 200).join(", ") +
        (this.selected.length > 200 ? ", ..." : "");
    }
    this.draw();
  };
  Trajectory.prototype.brush = function (start, end) {
    start = Math.max(0, Math.floor(start)); end = Math.min(this.time, Math.floor(end));
    if (!(end > start)) throw new Error("brush needs start < end inside [0, " + this.time + ")");
    this.brushRange = [start, end]; this.update(); return this.selected.slice();
  };
  Trajectory.prototype.setThreshold = function (t) {
    this.threshold = t; this.thr.value = t; this.thrNum.value = t; this.update();
  };
  Trajectory.prototype.setPad = function (l, r) {
    this.pad = [Math.max(0, l | 0), Math.max(0, r | 0)]; this.update();
  };
  Trajectory.prototype.scroll = function (start) {
    this.start = Math.max(0, Math.min(this.time - this.width, start | 0)); this.pos.value = this.start; this.draw();
  };
  Trajectory.prototype.setWindow = function (w) {
    this.width = Math.max(1, Math.min(this.time, w | 0));
    this.pos.max = Math.max(0, this.time - this.width); this.scroll(this.start);
  };
  Trajectory.prototype.draw = function () {
    var g = this.geometry(), cv = this.canvas, ctx = cv.getContext("2d");
    if (cv.width !== g.w) cv.width = g.w;
    var pw = g.w - g.left - g.right, dx = pw / this.width, s0 = this.start;
    var s1 = Math.min(this.time, s0 + this.width), T = this.time, vals = this.vals;
    var lo = this.lo, hi = this.hi, top = g.top, ph = g.plot;
    function Y(v) { return top + ph - (v - lo) / (hi - lo) * ph; }
    function X(t) { return g.left + (t - s0 + 0.5) * dx; }
    ctx.clearRect(0, 0, g.w, g.h);
    if (this.brushRange) {
      var b0 = Math.max(this.brushRange[0], s0), b1 = Math.min(this.brushRange[1], s1);
      if (b1 > b0) { ctx.fillStyle = "rgba(255,213,79,0.35)"; ctx.fillRect(g.left + (b0 - s0) * dx, top, (b1 - b0) * dx, g.h - top); }
    }
    var chosen = new Uint8Array(this.units), u, t;
    for (var i = 0; i < this.selected.length; i++) chosen[this.selected[i]] = 1;
    ctx.strokeStyle = "rgba(150,150,150,0.25)"; ctx.lineWidth = 1; ctx.beginPath();
    for (u = 0; u < this.units; u++) {
      if (chosen[u]) continue;
      ctx.moveTo(X(s0), Y(vals[u * T + s0]));
      for (t = s0 + 1; t < s1; t++) ctx.lineTo(X(t), Y(vals[u * T + t]));
    }
    ctx.stroke();
    ctx.lineWidth = 2;
    for (i = 0; i < this.selected.length; i++) {
      u = this.selected[i]; ctx.strokeStyle = COLOURS[i % COLOURS.length]; ctx.beginPath();
      ctx.moveTo(X(s0), Y(vals[u * T + s0]));
      for (t = s0 + 1; t < s1; t++) ctx.lineTo(X(t), Y(vals[u * T + t]));
      ctx.stroke();
    }
    if (this.selected.length) {  // count of selected units on, under each step (LSTMVis)
      ctx.fillStyle = "rgba(31,119,180,0.55)";
      for (t = s0; t < s1; t++) {
        var on = 0;
        for (i = 0; i < this.selected.length; i++) if (vals[this.selected[i] * T + t] >= this.threshold) on++;
        var bh = 16 * on / this.selected.length;
        ctx.fillRect(X(t) - dx * 0.4, g.h - 2 - bh, dx * 0.8, bh);
      }
    }
    ctx.strokeStyle = "#333"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1; ctx.beginPath();
    ctx.moveTo(g.left, Y(this.threshold)); ctx.lineTo(g.w - g.right, Y(this.threshold)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textAlign = "right";
    ctx.fillText(hi.toPrecision(3), g.left - 4, top + 8); ctx.fillText(lo.toPrecision(3), g.left - 4, top + ph);
    ctx.fillText(this.threshold.toPrecision(3), g.left - 4, Y(this.threshold) + 4);
    ctx.textAlign = "center"; ctx.font = Math.min(13, Math.max(8, dx * 0.8)) + "px monospace";
    var every = Math.max(1, Math.ceil(9 / dx));
    for (t = s0; t < s1; t += every) {
      var tok = this.tokens[t]; tok = VISIBLE.hasOwnProperty(tok) ? VISIBLE[tok] : tok;
      ctx.save(); ctx.translate(X(t), top + ph + 8); ctx.rotate(dx < 40 ? Math.PI / 2 : 0);
      ctx.textAlign = dx < 40 ? "left" : "center"; ctx.fillText(tok.slice(0, 12), 0, 4); ctx.restore();
    }
  };

  var api = {widgets: [], selectCells: selectCells, Trajectory: Trajectory, decode: decode,
    brush: function (i, a, b) { return api.widgets[i].brush(a, b); },
    setThreshold: function (i, t) { api.widgets[i].setThreshold(t); return api.widgets[i].selected.slice(); },
    setPad: function (i, l, r) { api.widgets[i].setPad(l, r); return api.widgets[i].selected.slice(); },
    selected: function (i) { return api.widgets[i].selected.slice(); },
    scroll: function (i, s) { api.widgets[i].scroll(s); },
    lastSelectionMs: function (i) { return api.widgets[i].lastMs; }};
  window.wbReport = api;

  function init() {
    var t = document.querySelectorAll(".wb-traj");
    for (var i = 0; i < t.length; i++) api.widgets.push(new Trajectory(t[i]));
    if (window.Plotly) drawFigures();
    else document.body.insertBefore(el("p", {"class": "wb-error"},
      "plotly.js did not load: keep plotly.min.js next to this file."), document.body.firstChild);
    api.ready = true;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
