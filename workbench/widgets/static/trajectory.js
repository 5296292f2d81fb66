// workbench trajectory widget (anywidget ESM): LSTMVis-style unit trajectories with a
// threshold and a brush. The selection rule is the one of workbench.viz.select_cells and of
// the HTML report: a unit is selected iff it is >= threshold at every step of [start, end)
// and < threshold on the pad[0] steps before and pad[1] steps after (outside counts as off).
// User actions compute the selection here and sync brush, threshold, pad and selected_cells
// back to Python; changes made from Python are drawn as they arrive.
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                 "#17becf", "#e377c2", "#8c564b", "#bcbd22", "#7f7f7f"];
const VISIBLE = { " ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d", "": "\u2205" };

export function decodeValues(raw) {
  // float32 little-endian, time-major [time, units]
  if (raw instanceof DataView) return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  if (raw instanceof ArrayBuffer) return new Float32Array(raw.slice(0));
  if (ArrayBuffer.isView(raw)) return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  if (typeof raw === "string") {  // base64 (widget state saved in a notebook file)
    const bin = atob(raw), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }
  throw new Error("values must be bytes");
}

export function selectCells(vals, time, units, start, end, thr, left, right) {
  const out = [], a = Math.max(0, start - left), b = Math.min(time, end + right);
  for (let u = 0; u < units; u++) {
    let ok = true, t;
    for (t = start; t < end && ok; t++) ok = vals[t * units + u] >= thr;
    for (t = a; t < start && ok; t++) ok = vals[t * units + u] < thr;
    for (t = end; t < b && ok; t++) ok = vals[t * units + u] < thr;
    if (ok) out.push(u);
  }
  return out;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el: root }) {
  const state = { vals: null, time: 0, units: 0, lo: 0, hi: 1, start: 0, drag: null, preview: null };
  const box = el("div", { class: "wb-traj-widget" });
  const controls = el("div", { class: "wb-controls" });
  const thr = el("input", { type: "range", class: "wb-threshold" });
  const thrNum = el("input", { type: "number", class: "wb-threshold-number" });
  const left = el("input", { type: "number", min: 0, class: "wb-pad-left" });
  const right = el("input", { type: "number", min: 0, class: "wb-pad-right" });
  const pos = el("input", { type: "range", min: 0, value: 0, class: "wb-position" });
  const win = el("input", { type: "number", min: 5, class: "wb-window" });
  const title = el("span", { class: "wb-name" });
  [["threshold ", thr], ["", thrNum], ["pad before ", left], ["pad after ", right],
   ["position ", pos], ["steps shown ", win]].forEach(([label, input]) => {
    const l = el("label", {}, label); l.appendChild(input); controls.appendChild(l);
  });
  controls.appendChild(title);
  const canvas = el("canvas", { height: 300, class: "wb-canvas" });
  const list = el("div", { class: "wb-selected" });
  box.appendChild(controls); box.appendChild(canvas); box.appendChild(list);
  root.appendChild(box);

  function load() {
    state.time = model.get("time"); state.units = model.get("units");
    state.vals = decodeValues(model.get("values"));
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < state.vals.length; i++) {
      const v = state.vals[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(hi > lo)) { lo = Number.isFinite(lo) ? lo : 0; hi = lo + 1; }
    state.lo = lo; state.hi = hi;
    const step = ((hi - lo) / 500).toPrecision(2);
    thr.min = lo; thr.max = hi; thr.step = step; thrNum.step = step;
    win.max = state.time;
    title.textContent = model.get("name") + " [" + state.time + " steps x " + state.units + " units]";
  }

  function width() { return Math.max(1, Math.min(state.time, model.get("window") || 120)); }

  function syncInputs() {
    const t = model.get("threshold"), pad = model.get("pad") || [1, 0];
    thr.value = t; thrNum.value = t; left.value = pad[0]; right.value = pad[1];
    const w = width();
    win.value = w; pos.max = Math.max(0, state.time - w);
    state.start = Math.max(0, Math.min(state.time - w, state.start)); pos.value = state.start;
  }

  // a user action: compute the selection here, sync everything to Python in one message
  function commit(changes) {
    const s = Object.assign({
      threshold: model.get("threshold"), pad: model.get("pad"), brush: model.get("brush"),
    }, changes);
    let selected = [];
    if (s.brush && s.brush.length === 2) {
      selected = selectCells(state.vals, state.time, state.units, s.brush[0], s.brush[1],
        s.threshold, s.pad[0], s.pad[1]);
    }
    for (const k in changes) model.set(k, changes[k]);
    model.set("selected_cells", selected);
    model.save_changes();
    draw();
  }

  function geometry() {
    const w = Math.max(200, root.clientWidth || box.clientWidth || 800);
    return { w: w, h: 300, left: 50, right: 10, top: 10, plot: 220 };
  }
  function stepAt(ev) {
    const g = geometry(), r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left - g.left) / ((g.w - g.left - g.right) / width());
    return Math.max(0, Math.min(state.time - 1, state.start + Math.floor(x)));
  }

  function listText(selected, brush) {
    if (!brush || brush.length !== 2) return "Brush a token range to select units.";
    return selected.length + " selected unit" + (selected.length === 1 ? "" : "s") +
      " for steps [" + brush[0] + ", " + brush[1] + "): " + selected.slice(0, 200).join(", ") +
      (selected.length > 200 ? ", ..." : "");
  }

  function draw() {
    const g = geometry(), ctx = canvas.getContext("2d");
    if (canvas.width !== g.w) canvas.width = g.w;
    const W = width(), s0 = state.start, s1 = Math.min(state.time, s0 + W);
    const T = state.time, U = state.units, vals = state.vals, lo = state.lo, hi = state.hi;
    const pw = g.w - g.left - g.right, dx = pw / W, top = g.top, ph = g.plot;
    const threshold = model.get("threshold"), selected = model.get("selected_cells") || [];
    const brush = state.preview || model.get("brush");
    const Y = (v) => top + ph - (v - lo) / (hi - lo) * ph;
    const X = (t) => g.left + (t - s0 + 0.5) * dx;
    list.textContent = listText(selected, model.get("brush"));
    ctx.clearRect(0, 0, g.w, g.h);
    if (brush && brush.length === 2) {
      const b0 = Math.max(brush[0], s0), b1 = Math.min(brush[1], s1);
      if (b1 > b0) {
        ctx.fillStyle = "rgba(255,213,79,0.35)";
        ctx.fillRect(g.left + (b0 - s0) * dx, top, (b1 - b0) * dx, g.h - top);
      }
    }
    const chosen = new Uint8Array(U);
    selected.forEach((u) => { if (u >= 0 && u < U) chosen[u] = 1; });
    ctx.strokeStyle = "rgba(150,150,150,0.25)"; ctx.lineWidth = 1; ctx.beginPath();
    for (let u = 0; u < U; u++) {
      if (chosen[u]) continue;
      ctx.moveTo(X(s0), Y(vals[s0 * U + u]));
      for (let t = s0 + 1; t < s1; t++) ctx.lineTo(X(t), Y(vals[t * U + u]));
    }
    ctx.stroke();
    ctx.lineWidth = 2;
    selected.forEach((u, i) => {
      if (!chosen[u]) return;
      ctx.strokeStyle = COLOURS[i % COLOURS.length]; ctx.beginPath();
      ctx.moveTo(X(s0), Y(vals[s0 * U + u]));
      for (let t = s0 + 1; t < s1; t++) ctx.lineTo(X(t), Y(vals[t * U + u]));
      ctx.stroke();
    });
    if (selected.length) {  // how many selected units are on, under each step (LSTMVis)
      ctx.fillStyle = "rgba(31,119,180,0.55)";
      for (let t = s0; t < s1; t++) {
        let on = 0;
        selected.forEach((u) => { if (vals[t * U + u] >= threshold) on++; });
        const bh = 16 * on / selected.length;
        ctx.fillRect(X(t) - dx * 0.4, g.h - 2 - bh, dx * 0.8, bh);
      }
    }
    ctx.strokeStyle = "#333"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1; ctx.beginPath();
    ctx.moveTo(g.left, Y(threshold)); ctx.lineTo(g.w - g.right, Y(threshold)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textAlign = "right";
    ctx.fillText(hi.toPrecision(3), g.left - 4, top + 8);
    ctx.fillText(lo.toPrecision(3), g.left - 4, top + ph);
    ctx.fillText(Number(threshold).toPrecision(3), g.left - 4, Y(threshold) + 4);
    ctx.font = Math.min(13, Math.max(8, dx * 0.8)) + "px monospace";
    const tokens = model.get("tokens") || [], every = Math.max(1, Math.ceil(9 / dx));
    for (let t = s0; t < s1; t += every) {
      let tok = String(tokens[t] ?? t);
      tok = Object.prototype.hasOwnProperty.call(VISIBLE, tok) ? VISIBLE[tok] : tok;
      ctx.save(); ctx.translate(X(t), top + ph + 8); ctx.rotate(dx < 40 ? Math.PI / 2 : 0);
      ctx.textAlign = dx < 40 ? "left" : "center"; ctx.fillText(tok.slice(0, 12), 0, 4);
      ctx.restore();
    }
  }

  const setThreshold = (v) => { if (Number.isFinite(v)) commit({ threshold: v }); };
  thr.addEventListener("input", () => setThreshold(+thr.value));
  thrNum.addEventListener("change", () => setThreshold(+thrNum.value));
  const setPad = () => commit({ pad: [Math.max(0, +left.value | 0), Math.max(0, +right.value | 0)] });
  left.addEventListener("change", setPad);
  right.addEventListener("change", setPad);
  pos.addEventListener("input", () => { state.start = +pos.value | 0; syncInputs(); draw(); });
  win.addEventListener("change", () => {
    model.set("window", Math.max(1, Math.min(state.time, +win.value | 0))); model.save_changes();
    syncInputs(); draw();
  });
  canvas.addEventListener("mousedown", (ev) => { state.drag = stepAt(ev); ev.preventDefault(); });
  canvas.addEventListener("mousemove", (ev) => {
    if (state.drag === null) return;
    const t = stepAt(ev);
    state.preview = [Math.min(state.drag, t), Math.max(state.drag, t) + 1]; draw();
  });
  const onUp = (ev) => {
    if (state.drag === null) return;
    const t = stepAt(ev), a = state.drag;
    state.drag = null; state.preview = null;
    commit({ brush: [Math.min(a, t), Math.max(a, t) + 1] });
  };
  window.addEventListener("mouseup", onUp);
  const onResize = () => draw();
  window.addEventListener("resize", onResize);

  const redraw = () => { syncInputs(); draw(); };
  const reload = () => { load(); redraw(); };
  const events = ["change:threshold", "change:pad", "change:brush", "change:selected_cells",
                  "change:window", "change:tokens"];
  events.forEach((e) => model.on(e, redraw));
  ["change:values", "change:time", "change:units", "change:name"].forEach((e) => model.on(e, reload));
  load(); redraw();
  return () => {
    events.forEach((e) => model.off(e, redraw));
    ["change:values", "change:time", "change:units", "change:name"].forEach((e) => model.off(e, reload));
    window.removeEventListener("mouseup", onUp);
    window.removeEventListener("resize", onResize);
  };
}

export default { render };
