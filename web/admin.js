// Owner/admin views (an admin token): the floor-plan editor (add, drag,
// resize, join, delete through the tables CRUD), a live event monitor
// with type/table/actor filters, the sensor health list (/api/v1/stats)
// and the analytics dashboard (/api/v1/analytics, /analytics/quotes;
// absent or 404 until the daemon has them: then a note, not an error).
import { api, attempt, el, now, state } from "./core.js";
import { bars, heatmap, lines } from "./charts.js";
import { eventLine, modal } from "./host.js";
import { age, t } from "./i18n.js";

const GRID = 0.5;
const snap = (v) => Math.round(v / GRID) * GRID;
const MONITOR_KEEP = 300;

// ---- editor ----

export class Editor {
  constructor(box) { this.box = box; this.drag = null; }

  render() {
    if (this.drag) return;
    const tables = [...state.tables.values()].sort((a, b) => a.id - b.id);
    const maxX = Math.max(12, ...tables.map((x) => x.x + x.w)) + 2;
    const maxY = Math.max(8, ...tables.map((x) => x.y + x.h)) + 2;
    const plan = el("div.editor-plan", {});
    const unit = Math.max(20, Math.min(56, (this.box.clientWidth || 800) / maxX));
    plan.style.cssText = `width:${maxX * unit}px;height:${maxY * unit}px;--u:${unit}px`;
    for (const x of tables) plan.append(this.tile(x, unit));
    this.box.replaceChildren(
      el("div.row", {}, el("button.primary", { type: "button", "data-action": "new-table", onclick: () => this.create() }, `+ ${t("act.newTable")}`),
        el("span.help", {}, t("admin.dragHelp"))),
      plan);
  }

  tile(x, unit) {
    const node = el(`div.edit-table.${x.shape}`, {
      dataset: { id: x.id }, tabindex: 0,
      style: `left:${x.x * unit}px;top:${x.y * unit}px;width:${x.w * unit}px;height:${x.h * unit}px`,
    }, el("b", {}, x.number), el("small", {}, `${x.zone} · ${x.seats}`), el("span.resize", { "aria-hidden": "true" }));
    node.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      node.setPointerCapture(e.pointerId);
      this.drag = { x, node, unit, resize: e.target.classList.contains("resize"), sx: e.clientX, sy: e.clientY, moved: false };
    });
    node.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d || d.node !== node) return;
      const dx = (e.clientX - d.sx) / unit, dy = (e.clientY - d.sy) / unit;
      if (Math.abs(dx) + Math.abs(dy) > 0.1) d.moved = true;
      if (d.resize) {
        d.w = Math.max(1, snap(x.w + dx)); d.h = Math.max(1, snap(x.h + dy));
        node.style.width = `${d.w * unit}px`; node.style.height = `${d.h * unit}px`;
      } else {
        d.nx = Math.max(0, snap(x.x + dx)); d.ny = Math.max(0, snap(x.y + dy));
        node.style.left = `${d.nx * unit}px`; node.style.top = `${d.ny * unit}px`;
      }
    });
    const end = () => {
      const d = this.drag;
      if (!d || d.node !== node) return;
      this.drag = null;
      if (!d.moved) { this.edit(x); return; }
      const body = d.resize ? { w: d.w, h: d.h } : { x: d.nx, y: d.ny };
      attempt(() => api(`/tables/${x.id}`, { method: "PATCH", body })).then(() => this.render());
    };
    node.addEventListener("pointerup", end);
    node.addEventListener("pointercancel", () => { this.drag = null; this.render(); });
    return node;
  }

  create() {
    const used = [...state.tables.values()];
    const y = used.length ? Math.max(...used.map((x) => x.y + x.h)) + 1 : 1;
    const number = String(Math.max(0, ...used.map((x) => Number(x.number) || 0)) + 1);
    attempt(() => api("/tables", { method: "POST", body: { number, zone: used[0]?.zone ?? "", seats: 4, x: 1, y, w: 2, h: 2 } }))
      .then(() => this.render());
  }

  edit(x) {
    const input = (name, value, type = "text") => el("input", { name, type, value: value ?? "" });
    const number = input("number", x.number), zone = input("zone", x.zone), seats = input("seats", x.seats, "number");
    const shape = el("select", { name: "shape" }, ...["rect", "round"].map((s) => el("option", { value: s, selected: s === x.shape }, s)));
    const joins = input("joins", (x.joins ?? []).join(","));
    const close = modal(`${t("table", { n: x.number })} (id ${x.id})`, el("form.stack", {
      onsubmit: (e) => {
        e.preventDefault();
        const body = { number: number.value.trim(), zone: zone.value.trim(), seats: Number(seats.value), shape: shape.value,
          joins: joins.value.split(/[,+ ]+/).filter(Boolean).map(Number) };
        attempt(async () => { await api(`/tables/${x.id}`, { method: "PATCH", body }); close(); });
      },
    }, ...[[t("admin.number"), number], [t("admin.zone"), zone], [t("admin.seats"), seats], [t("admin.shape"), shape], [t("admin.joins"), joins]]
      .map(([l, i]) => el("label.field", {}, el("span", {}, l), i)),
    el("div.row", {}, el("button.primary", { type: "submit" }, t("act.save")),
      el("button.danger", { type: "button", "data-action": "delete", onclick: () => {
        if (!confirm(t("admin.confirmDelete", { n: x.number }))) return;
        attempt(async () => { await api(`/tables/${x.id}`, { method: "DELETE" }); close(); });
      } }, t("act.delete")))));
  }
}

// ---- event monitor ----

export class Monitor {
  constructor(box) {
    this.box = box; this.events = []; this.loaded = false;
    this.type = el("select", { name: "type", onchange: () => this.draw() },
      el("option", { value: "" }, "—"), ...["table", "alert", "reservation", "waitlist", "sensor", "system"].map((p) => el("option", { value: p }, p)));
    this.table = el("input", { name: "table", inputmode: "numeric", size: 4, oninput: () => this.draw() });
    this.actor = el("input", { name: "actor", size: 12, placeholder: "staff:…", oninput: () => this.draw() });
    this.list = el("ol.monitor", {});
  }

  async load() {
    if (this.loaded) return;
    this.loaded = true;
    const since = new Date(now() - 6 * 3600e3).toISOString();
    const page = await api(`/events?since=${since}&limit=1000`).catch(() => null);
    const seen = new Set(this.events.map((e) => e.seq));
    this.events = [...(page?.events ?? []).filter((e) => !seen.has(e.seq)), ...this.events].slice(-MONITOR_KEEP);
    this.draw();
  }

  push(ev) {
    this.events.push(ev);
    if (this.events.length > MONITOR_KEEP) this.events.shift();
    if (this.box.isConnected && !this.box.closest("[hidden]")) this.draw();
  }

  draw() {
    const type = this.type.value, table = this.table.value.trim(), actor = this.actor.value.trim();
    const shown = this.events.filter((e) => (!type || e.type.startsWith(type))
      && (!table || String(e.table) === table) && (!actor || e.actor.includes(actor))).slice(-100).reverse();
    this.list.replaceChildren(...shown.map((e) => {
      const li = eventLine(e);
      li.prepend(el("span.seq", {}, `#${e.seq} `));
      if (e.table != null) li.append(` · ${t("table", { n: state.tables.get(e.table)?.number ?? e.table })}`);
      return li;
    }));
    if (!this.list.isConnected) {
      this.box.replaceChildren(el("div.row.filters", {},
        el("label.field", {}, el("span", {}, t("monitor.type")), this.type),
        el("label.field", {}, el("span", {}, t("monitor.table")), this.table),
        el("label.field", {}, el("span", {}, t("monitor.actor")), this.actor)), this.list);
    }
  }
}

// ---- sensors ----

export async function renderSensors(box) {
  const stats = await api("/stats").catch(() => null);
  const sensors = stats?.sensors ?? [];
  if (!sensors.length) { box.replaceChildren(el("p.empty", {}, t("sensors.none"))); return; }
  box.replaceChildren(el("ul.sensors", {}, ...sensors.map((s) => {
    const health = typeof s.health === "string" ? s.health : JSON.stringify(s.health);
    const ok = /^(ok|healthy)$/i.test(health);
    const last = s.reading_since ? t("sensors.last", { age: age(now() - Date.parse(s.reading_since)) }) : "";
    return el(`li.sensor.${ok ? "ok" : "bad"}`, { dataset: { id: s.id } },
      el("b", {}, `${ok ? "✓" : "✗"} ${s.id}`), ` · ${s.kind}`,
      s.table != null ? ` · ${t("table", { n: state.tables.get(s.table)?.number ?? s.table })}` : "",
      ` · ${health}`, last ? ` · ${last}` : "", s.faults ? ` · ${t("sensors.fault")} ×${s.faults}` : "",
      s.last_error ? el("div.err", {}, s.last_error) : null);
  })));
}

// ---- analytics ----

const pct = (r) => (r == null ? "—" : `${Math.round(r * 100)} %`);

export async function renderAnalytics(box) {
  const [an, quotes] = await Promise.all([api("/analytics").catch(() => null), api("/analytics/quotes").catch(() => null)]);
  const parts = [];
  if (an) {
    const days = t("days").split(",");
    if (an.utilization?.cells) parts.push(card(t("an.utilization"), heatmap(an.utilization.cells, days, an.utilization.hours ?? [...Array(24).keys()], t("an.utilization"))));
    if (an.turns_per_table?.length) parts.push(card(t("an.turns"), bars(an.turns_per_table.map((x) => ({ label: t("table", { n: state.tables.get(x.table)?.number ?? x.table }), value: x.turns })), t("an.turns"))));
    if (an.turn_time_by_party_size?.length) parts.push(card(t("an.bySize"), bars(an.turn_time_by_party_size.map((x) => ({ label: t("people", { n: x.party_size }), value: x.median_minutes, extra: x.p80_minutes })), t("an.bySize"), " min")));
    if (an.covers?.by_day?.length) parts.push(card(`${t("an.covers")} (${an.covers.total ?? "—"})`, lines([{ name: "covers", cls: "a", values: an.covers.by_day.map((d) => d.covers) }], an.covers.by_day.map((d) => d.date.slice(5)), t("an.covers"))));
    const figures = [];
    if (an.no_shows) figures.push([t("an.noShows"), t("an.rate", { n: an.no_shows.no_shows ?? "—", of: an.no_shows.reservations ?? "—", pct: pct(an.no_shows.rate) })]);
    if (an.walk_aways) figures.push([t("an.walkAways"), t("an.rate", { n: an.walk_aways.left ?? "—", of: an.walk_aways.parties ?? "—", pct: pct(an.walk_aways.rate) })]);
    if (an.alert_ack_seconds) figures.push([t("an.ack"), t("an.p50p90", { a: an.alert_ack_seconds.p50 ?? "—", b: an.alert_ack_seconds.p90 ?? "—" })]);
    for (const s of an.sensor_uptime ?? []) figures.push([`${t("an.uptime")} ${s.sensor}`, pct(s.uptime)]);
    if (figures.length) parts.push(card("", el("dl.figures", {}, ...figures.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))));
  }
  if (quotes?.by_day?.length) {
    parts.push(card(`${t("an.quotes")} · ${t("an.model")} ${quotes.model?.mae_minutes ?? "—"} / ${t("an.baseline")} ${quotes.baseline?.mae_minutes ?? "—"}`,
      lines([{ name: t("an.model"), cls: "a", values: quotes.by_day.map((d) => d.model_mae_minutes) },
        { name: t("an.baseline"), cls: "b", values: quotes.by_day.map((d) => d.baseline_mae_minutes) }],
      quotes.by_day.map((d) => d.date.slice(5)), t("an.quotes")),
      el("p.legend-line", {}, el("span.key.a", {}, t("an.model")), " ", el("span.key.b", {}, t("an.baseline")))));
  }
  box.replaceChildren(...(parts.length ? parts : [el("p.empty", {}, t("an.none"))]));
}

function card(title, ...body) {
  return el("section.card", {}, title ? el("h3", {}, title) : null, ...body);
}
