// workbench matches widget (anywidget ESM): ranked LSTMVis matches as a table of token
// spans in context. Clicking a row sets `selected` (synced to Python). Tokens are user
// data: they only ever reach the page as text nodes.
const VISIBLE = { " ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d", "": "\u2205" };
const show = (t) => (Object.prototype.hasOwnProperty.call(VISIBLE, t) ? VISIBLE[t] : String(t));

function cell(tag, text, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el }) {
  const box = cell("div", undefined, "wb-matches");
  const caption = cell("div", undefined, "wb-matches-caption");
  const table = cell("table");
  box.appendChild(caption); box.appendChild(table);
  el.appendChild(box);

  function draw() {
    const rows = model.get("rows") || [], selected = model.get("selected");
    caption.textContent = model.get("caption") || "";
    table.replaceChildren();
    const head = cell("tr");
    ["#", "document", "start", "length", "cells shared", "union", "context"].forEach((h) => head.appendChild(cell("th", h)));
    const thead = cell("thead"); thead.appendChild(head); table.appendChild(thead);
    const body = cell("tbody");
    rows.forEach((r, i) => {
      const tr = cell("tr", undefined, i === selected ? "wb-row wb-row-selected" : "wb-row");
      tr.dataset.index = String(i);
      [String(i + 1), String(r.document), String(r.start), String(r.length),
       String(r.intersection), String(r.union)].forEach((v) => tr.appendChild(cell("td", v)));
      const ctx = cell("td", undefined, "wb-context");
      ctx.appendChild(cell("span", (r.before || []).map(show).join(""), "wb-before"));
      ctx.appendChild(cell("mark", (r.span || []).map(show).join(""), "wb-span"));
      ctx.appendChild(cell("span", (r.after || []).map(show).join(""), "wb-after"));
      tr.appendChild(ctx);
      tr.addEventListener("click", () => { model.set("selected", i); model.save_changes(); draw(); });
      body.appendChild(tr);
    });
    table.appendChild(body);
  }
  draw();
  model.on("change:rows", draw);
  model.on("change:selected", draw);
  model.on("change:caption", draw);
  return () => {
    model.off("change:rows", draw);
    model.off("change:selected", draw);
    model.off("change:caption", draw);
  };
}

export default { render };
