// The floor plan: every table at its x/y/w/h/shape, scaled to the width
// it has (a 390 px phone shows the whole plan, no sideways scrolling),
// with zone tabs. State is colour AND an icon and a label (colour-blind
// staff; palette in docs/UI.md). Each table also shows its seats and
// people, the time in its state, a badge per hold, "libre en ~N min" from
// `expected_free_at` and the reservation due. Tiles are never smaller
// than 44 px, the touch-target minimum.
import { el, now, state } from "./core.js";
import { age, t, time } from "./i18n.js";

export const ICONS = { free: "✓", occupied: "●", reserved: "◷", dirty: "✗", unknown: "?" };
const MIN_TILE = 44;
const MAX_UNIT = 64;

export class FloorPlan {
  /// `box`: where the plan goes; `tabs`: where the zone tabs go;
  /// `onTap(table)`: a tap on a table.
  constructor({ box, tabs, onTap }) {
    this.box = box; this.tabs = tabs; this.onTap = onTap;
    this.zone = localStorage.getItem("mesero.zone") || "";
    new ResizeObserver(() => this.render()).observe(box);
  }

  zones() {
    return [...new Set([...state.tables.values()].map((x) => x.zone || ""))].sort();
  }

  visible() {
    return [...state.tables.values()]
      .filter((x) => !this.zone || (x.zone || "") === this.zone)
      .sort((a, b) => a.id - b.id);
  }

  renderTabs() {
    const zones = this.zones();
    if (this.zone && !zones.includes(this.zone)) this.zone = "";
    const tab = (zone, label) => el("button.tab", {
      type: "button", role: "tab", "aria-selected": String(this.zone === zone), dataset: { zone },
      onclick: () => { this.zone = zone; localStorage.setItem("mesero.zone", zone); this.render(); },
    }, label);
    // Rebuilt only when they change, so a tap on a tab is never lost to a
    // re-render between press and release.
    const key = JSON.stringify([zones, this.zone]);
    if (this.tabsKey === key) return;
    this.tabsKey = key;
    this.tabs.replaceChildren(tab("", t("zone.all")), ...zones.map((z) => tab(z, z || "—")));
  }

  /// Plan units → pixels for the width the plan has now.
  layout(tables) {
    const minX = Math.min(...tables.map((x) => x.x)), minY = Math.min(...tables.map((x) => x.y));
    const maxX = Math.max(...tables.map((x) => x.x + x.w)), maxY = Math.max(...tables.map((x) => x.y + x.h));
    const width = Math.max(200, this.box.clientWidth);
    // Half a unit of margin on each side.
    const spanX = maxX - minX + 1;
    const unit = Math.min(MAX_UNIT, width / spanX);
    return { unit, ox: minX - 0.5, oy: minY - 0.5, height: (maxY - minY + 1) * unit };
  }

  render() {
    this.renderTabs();
    const tables = this.visible();
    if (!tables.length) { this.box.replaceChildren(); this.box.style.height = "0"; return; }
    const { unit, ox, oy, height } = this.layout(tables);
    this.box.style.height = `${height}px`;
    this.box.style.setProperty("--u", `${unit}px`);
    // Tiles are updated in place (same element per table), for the same
    // reason as the tabs.
    const keep = new Set();
    for (const x of tables) {
      const fresh = tile(x, unit, ox, oy, state.reservations, this.onTap);
      const old = this.box.querySelector(`:scope > .table[data-id="${x.id}"]`);
      keep.add(String(x.id));
      if (!old) { this.box.append(fresh); continue; }
      old.className = fresh.className;
      old.style.cssText = fresh.style.cssText;
      Object.assign(old.dataset, fresh.dataset);
      old.setAttribute("aria-label", fresh.getAttribute("aria-label"));
      old.replaceChildren(...fresh.childNodes);
    }
    for (const node of [...this.box.children]) if (!keep.has(node.dataset.id)) node.remove();
  }
}

/// "ocupada 42 min".
export function inState(table) {
  if (table.state === "unknown") return t("noData");
  return t("inState", { state: t(`state.${table.state}`), age: age(now() - Date.parse(table.since)) });
}

function tile(x, unit, ox, oy, reservations, onTap) {
  const w = Math.max(MIN_TILE, x.w * unit), h = Math.max(MIN_TILE, x.h * unit);
  const small = Math.min(w, h) < 90;
  const lines = [];
  const people = x.people != null ? t("peopleOfSeats", { n: x.people, of: x.seats }) : t("seatsShort", { n: x.seats });
  lines.push(el("span.meta", { title: t("seats", { n: x.seats }) }, people));
  const free = freeIn(x);
  if (free) lines.push(el("span.free-at", {}, free));
  const res = x.reservation != null ? reservations.get(x.reservation) : null;
  if (res && res.status === "booked") lines.push(el("span.res-due", {}, t("resDue", { t: time(res.at) })));
  let hold = null;
  if (x.hold_until && Date.parse(x.hold_until) > now()) {
    const mins = Math.max(1, Math.ceil((Date.parse(x.hold_until) - now()) / 60000));
    hold = el("span.hold", { title: t("holdUntil", { t: time(x.hold_until) }) }, `‖ ${t("age.m", { n: mins })}`);
  }
  const label = x.state === "unknown" ? t("noData") : t(`state.${x.state}`);
  const sinceText = x.state === "unknown" ? "" : age(now() - Date.parse(x.since));
  const node = el(`button.table.${x.shape}.${x.state}${small ? ".small" : ""}`, {
    type: "button",
    dataset: { id: x.id, state: x.state, zone: x.zone || "", x: x.x, y: x.y },
    "aria-label": `${t("table", { n: x.number })}: ${inState(x)}`,
    style: `left:${(x.x - ox) * unit}px;top:${(x.y - oy) * unit}px;width:${w}px;height:${h}px`,
    onclick: () => onTap?.(state.tables.get(x.id) ?? x),
  },
  el("b.num", {}, x.number),
  // Small tiles (a phone): icon and time on one line, the label for
  // screen readers and the legend; big ones: "● ocupada" then the time.
  el("span.state", {}, el("i.icon", { "aria-hidden": "true" }, ICONS[x.state] ?? "?"), el("span.label", {}, ` ${label}`),
    small && sinceText ? ` ${sinceText}` : ""),
  !small && sinceText ? el("span.since", {}, sinceText) : null,
  ...lines,
  hold);
  return node;
}

/// "libre en ~15 min" from the prediction, or null without one.
export function freeIn(x) {
  if (x.state !== "occupied" || !x.expected_free_at) return null;
  const mins = Math.round((Date.parse(x.expected_free_at) - now()) / 60000);
  if (Number.isNaN(mins)) return null;
  return mins <= 0 ? t("freeSoon") : t("freeIn", { n: mins });
}
