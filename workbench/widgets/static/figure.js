// workbench figure widget (anywidget ESM): draws the synced plotly figure spec.
// plotly.js comes from the kernel (the installed `plotly` package) in one custom message,
// once per page; nothing is fetched from the network.
const KEY = "__workbenchPlotly";

function bytesOf(buf) {
  if (buf instanceof DataView) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new Error("unexpected buffer type");
}

export function loadPlotly(model) {
  if (globalThis.Plotly && globalThis.Plotly.react) return Promise.resolve(globalThis.Plotly);
  if (globalThis[KEY]) return globalThis[KEY];
  const promise = new Promise((resolve, reject) => {
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== "wb-plotly") return;
      model.off("msg:custom", onMsg);
      try {
        const source = new TextDecoder().decode(bytesOf(buffers[0]));
        const module = { exports: {} };
        new Function("module", "exports", source)(module, module.exports);
        resolve(module.exports && module.exports.react ? module.exports : globalThis.Plotly);
      } catch (err) {
        reject(err);
      }
    };
    model.on("msg:custom", onMsg);
    model.send({ type: "wb-plotly-request" });
  });
  globalThis[KEY] = promise;
  promise.catch(() => { delete globalThis[KEY]; });
  return promise;
}

async function render({ model, el }) {
  const div = document.createElement("div");
  div.className = "wb-figure";
  el.appendChild(div);
  let Plotly;
  div.textContent = "loading plotly.js from the kernel...";
  try {
    Plotly = await loadPlotly(model);
    div.textContent = "";
  } catch (err) {
    div.textContent = "plotly.js could not be loaded from the kernel: " + err;
    return;
  }
  const config = { responsive: true, displaylogo: false, showLink: false, showSendToCloud: false };
  const draw = () => {
    const f = model.get("figure") || {};
    Plotly.react(div, f.data || [], f.layout || {}, config);
  };
  draw();
  div.on("plotly_click", (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p) return;
    model.set("last_click", { trace: p.curveNumber, x: p.x, y: p.y, index: p.pointIndex ?? null });
    model.save_changes();
  });
  model.on("change:figure", draw);
  return () => {
    model.off("change:figure", draw);
    Plotly.purge(div);
  };
}

export default { render };
