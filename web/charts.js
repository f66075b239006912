// Small SVG charts drawn in the browser (no library): a heat map, bars
// and lines. Values that are null are drawn as gaps, never as zero.
const NS = "http://www.w3.org/2000/svg";

function svg(w, h, label) {
  const s = document.createElementNS(NS, "svg");
  s.setAttribute("viewBox", `0 0 ${w} ${h}`);
  s.setAttribute("role", "img");
  s.setAttribute("aria-label", label);
  s.classList.add("chart");
  return s;
}

function add(parent, tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  parent.append(n);
  return n;
}

/// rows × columns of shares 0..1 (null: no data), e.g. weekday × hour.
export function heatmap(cells, rowLabels, colLabels, label) {
  const cw = 22, ch = 20, left = 40, top = 16;
  const s = svg(left + colLabels.length * cw, top + rowLabels.length * ch, label);
  colLabels.forEach((c, i) => { if (i % 3 === 0) add(s, "text", { x: left + i * cw + 2, y: 12, class: "axis" }, String(c)); });
  rowLabels.forEach((r, j) => {
    add(s, "text", { x: 0, y: top + j * ch + 14, class: "axis" }, r);
    (cells[j] ?? []).forEach((v, i) => {
      const rect = add(s, "rect", { x: left + i * cw, y: top + j * ch, width: cw - 2, height: ch - 2, rx: 2,
        class: v == null ? "nodata" : "heat", "fill-opacity": v == null ? 1 : (0.08 + 0.92 * Math.max(0, Math.min(1, v))).toFixed(2) });
      add(rect, "title", {}, v == null ? `${r} ${colLabels[i]}: —` : `${r} ${colLabels[i]}: ${Math.round(v * 100)} %`);
    });
  });
  return s;
}

/// Horizontal bars: [{label, value, extra?}] (extra: a second, lighter bar, e.g. p80).
export function bars(items, label, unit = "") {
  const rowH = 24, left = 70, width = 420;
  const max = Math.max(1, ...items.flatMap((x) => [x.value ?? 0, x.extra ?? 0]));
  const s = svg(left + width + 60, Math.max(1, items.length) * rowH + 4, label);
  items.forEach((x, j) => {
    const y = j * rowH + 2;
    add(s, "text", { x: 0, y: y + 15, class: "axis" }, x.label);
    if (x.extra != null) add(s, "rect", { x: left, y, width: (x.extra / max) * width, height: rowH - 6, class: "bar2" });
    if (x.value != null) add(s, "rect", { x: left, y, width: (x.value / max) * width, height: rowH - 6, class: "bar" });
    const text = x.value == null ? "—" : `${Math.round(x.value * 10) / 10}${unit}${x.extra != null ? ` / ${Math.round(x.extra)}${unit}` : ""}`;
    add(s, "text", { x: left + ((Math.max(x.value ?? 0, x.extra ?? 0)) / max) * width + 4, y: y + 15, class: "value" }, text);
  });
  return s;
}

/// Lines over dates: series [{name, cls, values: [number|null]}], x labels.
export function lines(series, xLabels, label) {
  const w = 520, h = 180, left = 36, bottom = 22, top = 8;
  const all = series.flatMap((x) => x.values).filter((v) => v != null);
  const max = Math.max(1, ...all);
  const s = svg(w, h, label);
  const x = (i) => left + (xLabels.length <= 1 ? 0 : (i / (xLabels.length - 1)) * (w - left - 8));
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  for (const f of [0, 0.5, 1]) {
    add(s, "line", { x1: left, x2: w - 8, y1: y(max * f), y2: y(max * f), class: "grid" });
    add(s, "text", { x: 0, y: y(max * f) + 4, class: "axis" }, String(Math.round(max * f)));
  }
  xLabels.forEach((d, i) => {
    if (i === 0 || i === xLabels.length - 1 || i % Math.ceil(xLabels.length / 6) === 0) add(s, "text", { x: x(i) - 12, y: h - 4, class: "axis" }, d);
  });
  for (const ser of series) {
    let path = "", penUp = true;
    ser.values.forEach((v, i) => {
      if (v == null) { penUp = true; return; }
      path += `${penUp ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      penUp = false;
    });
    add(s, "path", { d: path, class: `line ${ser.cls}` });
    ser.values.forEach((v, i) => { if (v != null) add(s, "circle", { cx: x(i), cy: y(v), r: 2.5, class: `dot ${ser.cls}` }); });
  }
  return s;
}
