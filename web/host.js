// The host stand: a tapped table's actions (state, hold, seat a party,
// its recent events and who made them), the waitlist and today's
// reservations (create, edit, check in by code or camera QR, print QR).
import { api, attempt, el, now, state, toast } from "./core.js";
import { inState, freeIn } from "./floor.js";
import { age, dateTime, t, time, today } from "./i18n.js";

/// Shows `body` in the page's one dialog; returns a function that closes it.
export function modal(title, ...body) {
  const dlg = document.getElementById("dlg");
  const close = () => dlg.close();
  dlg.replaceChildren(
    el("header.dlg-head", {}, el("h2", {}, title), el("button.close", { type: "button", "aria-label": t("act.cancel"), onclick: close }, "✕")),
    ...body);
  if (!dlg.open) dlg.showModal();
  return close;
}

function field(label, input) { return el("label.field", {}, el("span", {}, label), input); }
function number(name, value, min = 1, max = 1000) {
  return el("input", { name, type: "number", inputmode: "numeric", min, max, value: value ?? "" });
}

/// PUT state; `party_size` is sent when seating (the visits record uses
/// it). A daemon that does not know the field yet (it answers 400 naming
/// it) gets the request again without it, so the tap still works.
export async function setState(id, body) {
  try {
    return await api(`/tables/${id}/state`, { method: "PUT", body });
  } catch (e) {
    if (e.status === 400 && body.party_size !== undefined && /party_size/.test(e.message)) {
      const { party_size: _, ...rest } = body;
      return api(`/tables/${id}/state`, { method: "PUT", body: rest });
    }
    throw e;
  }
}

const RECENT_HOURS = 12;

export function tableDialog(x) {
  const hold = number("hold", "", 1, 720);
  hold.placeholder = "15";
  const size = number("party", "", 1, 1000);
  size.placeholder = String(x.seats);
  const recent = el("ol.recent", {}, el("li", {}, "…"));
  const act = (body) => attempt(async () => { await setState(x.id, body); close(); });
  const states = ["free", "occupied", "reserved", "dirty"].map((s) => el(`button.state-btn.${s}`, {
    type: "button", dataset: { state: s },
    onclick: () => act({ state: s, ...(hold.value ? { hold_minutes: Number(hold.value) } : {}) }),
  }, t(`state.${s}`)));
  const extra = [];
  const free = freeIn(x);
  if (free) extra.push(el("p.free-at", {}, free));
  const close = modal(`${t("table", { n: x.number })} · ${x.zone}`,
    el("p.now", {}, `${inState(x)} · ${t("seats", { n: x.seats })}${x.people != null ? ` · ${t("people", { n: x.people })}` : ""}`),
    ...extra,
    el("h3", {}, t("act.setState")), el("div.row", {}, ...states), field(t("act.hold"), hold),
    el("h3", {}, t("act.seat")),
    el("form.row", {
      onsubmit: (e) => { e.preventDefault(); act({ state: "occupied", party_size: Number(size.value || x.seats), ...(hold.value ? { hold_minutes: Number(hold.value) } : {}) }); },
    }, field(t("act.partySize"), size), el("button.primary", { type: "submit", "data-action": "seat" }, t("act.seatParty"))),
    el("h3", {}, t("recent")), recent);
  // The page is in seq order from `since`: ask for the last hours, keep the end.
  const since = new Date(now() - RECENT_HOURS * 3600e3).toISOString();
  api(`/events?table=${x.id}&since=${since}&limit=1000`).then((page) => {
    const events = (page?.events ?? []).slice(-8).reverse();
    recent.replaceChildren(...(events.length ? events.map(eventLine) : [el("li", {}, t("recent.none"))]));
  }).catch(() => recent.replaceChildren(el("li", {}, t("err.network"))));
}

export function eventLine(ev) {
  const d = ev.data ?? {};
  const what = ev.type === "table.state" ? `${t(`state.${d.from}`)} → ${t(`state.${d.to}`)}` : ev.type;
  return el("li", {}, el("time", {}, time(ev.ts)), " ", el("span.what", {}, what), " ", el("span.actor", {}, ev.actor));
}

// ---- waitlist ----

export async function loadWaitlist() {
  const list = await api("/waitlist").catch(() => null);
  if (!Array.isArray(list)) return;
  state.waitlist = new Map(list.filter((p) => p.status === "waiting" || p.status === "notified").map((p) => [p.id, p]));
  state.changed("waitlist");
}

export function renderWaitlist(box) {
  const parties = [...state.waitlist.values()].sort((a, b) => (a.position ?? 999) - (b.position ?? 999) || a.id - b.id);
  const add = el("button.primary", { type: "button", "data-action": "add-party", onclick: addPartyDialog }, `+ ${t("act.add")}`);
  box.replaceChildren(el("header.panel-head", {}, el("h2", {}, t("waitlist")), add),
    parties.length ? el("ul.parties", {}, ...parties.map(partyItem)) : el("p.empty", {}, t("waitlist.none")));
}

function quote(p) {
  const a = p.quote_p50_minutes, b = p.quote_p80_minutes;
  const parts = [];
  if (a != null && b != null) parts.push(b === 0 ? t("waitlist.noWait") : t("waitlist.quote", { a, b }));
  if (p.quoted_minutes != null) parts.push(t("waitlist.quoted", { n: p.quoted_minutes }));
  return parts.join(" · ");
}

function partyItem(p) {
  const ready = p.status === "notified";
  const tables = (p.offered ?? []).map((id) => state.tables.get(id)?.number ?? id).join("+");
  return el(`li.party${ready ? ".ready" : ""}`, { dataset: { id: p.id, status: p.status } },
    el("div.who", {}, el("b", {}, p.name), ` · ${t("people", { n: p.party_size })}`),
    el("div.quote", {}, quote(p), " · ", t("waitlist.waiting", { age: age(now() - Date.parse(p.added_at)) })),
    ready ? el("div.ready-note", { role: "status" }, `⚑ ${t("waitlist.readyAt", { tables })}`) : null,
    el("div.row", {},
      el("button.primary", { type: "button", "data-action": "seat", disabled: !ready,
        onclick: () => attempt(() => api(`/waitlist/${p.id}/seat`, { method: "POST", body: {} })) }, t("act.seatParty")),
      el("button", { type: "button", "data-action": "remove",
        onclick: () => attempt(() => api(`/waitlist/${p.id}`, { method: "DELETE" })) }, t("act.remove"))));
}

function addPartyDialog() {
  const name = el("input", { name: "name", required: true, maxlength: 80, autocomplete: "off" });
  const size = number("party_size", 2);
  const phone = el("input", { name: "phone", type: "tel", autocomplete: "off" });
  const told = number("quoted", "", 0, 600);
  const close = modal(t("waitlist"), el("form.stack", {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(async () => {
        const body = { name: name.value.trim(), party_size: Number(size.value) };
        if (phone.value.trim()) body.phone = phone.value.trim();
        if (told.value) body.quoted_minutes = Number(told.value);
        const party = await api("/waitlist", { method: "POST", body });
        state.waitlist.set(party.id, party); state.changed("waitlist");
        toast(`${party.name}: ${quote(party)}`);
        close();
      });
    },
  }, field(t("waitlist.name"), name), field(t("waitlist.size"), size), field(t("waitlist.phone"), phone),
  field(t("waitlist.quoteTold"), told), el("button.primary", { type: "submit" }, t("act.add"))));
  name.focus();
}

// ---- reservations ----

function todays() {
  const day = today();
  return [...state.reservations.values()]
    .filter((r) => r.at.slice(0, 10) === day && r.status !== "cancelled")
    .sort((a, b) => a.at.localeCompare(b.at));
}

export function renderReservations(box) {
  const list = todays();
  box.replaceChildren(
    el("header.panel-head", {}, el("h2", {}, t("reservations")),
      el("button.primary", { type: "button", "data-action": "new-reservation", onclick: () => reservationDialog(null) }, `+ ${t("res.new")}`),
      el("button", { type: "button", "data-action": "check-in", onclick: checkInDialog }, t("act.checkin"))),
    list.length ? el("ul.reservations", {}, ...list.map(reservationItem)) : el("p.empty", {}, t("reservations.none")));
}

function tablesText(r) {
  return (r.tables ?? []).map((id) => state.tables.get(id)?.number ?? id).join("+") || "—";
}

function reservationItem(r) {
  return el(`li.reservation.${r.status}`, { dataset: { id: r.id, code: r.code } },
    el("div.who", {}, el("b", {}, `${time(r.at)} · ${r.name}`), ` · ${t("people", { n: r.party_size })} · ${t("res.table")} ${tablesText(r)}`),
    el("div.meta", {}, `${t(`res.status.${r.status}`)} · ${t("res.code")} ${r.code}${r.notes ? ` · ${r.notes}` : ""}`),
    el("div.row", {},
      r.status === "booked" ? el("button.primary", { type: "button", onclick: () => checkIn(r.code) }, t("act.checkin")) : null,
      r.status === "booked" ? el("button", { type: "button", onclick: () => reservationDialog(r) }, t("act.edit")) : null,
      el("button", { type: "button", onclick: () => printQr(r) }, t("act.print"))));
}

function reservationDialog(r) {
  const name = el("input", { name: "name", required: true, maxlength: 80, value: r?.name ?? "" });
  const size = number("party_size", r?.party_size ?? 2);
  const at = el("input", { name: "at", type: "time", required: true, value: r ? r.at.slice(11, 16) : "" });
  const table = el("input", { name: "table", inputmode: "numeric", placeholder: "3 o 9,10", value: r ? (r.tables ?? []).join(",") : "" });
  const phone = el("input", { name: "phone", type: "tel", value: r?.phone ?? "" });
  const notes = el("input", { name: "notes", maxlength: 200, value: r?.notes ?? "" });
  const close = modal(r ? `${t("act.edit")} · ${r.name}` : t("res.new"), el("form.stack", {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(async () => {
        // A local time of today in the site's zone; the daemon reads it so.
        const body = { name: name.value.trim(), party_size: Number(size.value), at: `${r ? r.at.slice(0, 10) : today()}T${at.value}:00` };
        const ids = table.value.split(/[,+ ]+/).filter(Boolean).map(Number);
        if (ids.length) body.tables = ids;
        if (phone.value.trim() || r?.phone) body.phone = phone.value.trim() || null;
        if (notes.value.trim() || r?.notes) body.notes = notes.value.trim() || null;
        if (!r) { if (body.phone === null) delete body.phone; if (body.notes === null) delete body.notes; }
        const saved = await api(r ? `/reservations/${r.id}` : "/reservations", { method: r ? "PATCH" : "POST", body });
        const res = saved?.reservation ?? saved;
        if (res?.id) { state.reservations.set(res.id, res); state.changed("reservations"); }
        close();
      });
    },
  }, field(t("res.name"), name), field(t("res.size"), size), field(t("res.time"), at), field(t("res.table"), table),
  field(t("res.phone"), phone), field(t("res.notes"), notes), el("button.primary", { type: "submit" }, t("act.save"))));
}

async function checkIn(code) {
  const out = await attempt(() => api("/reservations/check-in", { method: "POST", body: { code } }));
  const res = out?.reservation ?? out;
  if (res?.id) { state.reservations.set(res.id, res); state.changed("reservations"); toast(t("res.checkedIn", { name: res.name })); }
  return Boolean(res?.id);
}

function checkInDialog() {
  const code = el("input", { name: "code", autocomplete: "off", autocapitalize: "characters", required: true });
  const video = el("video.scan", { playsinline: true, muted: true, hidden: true });
  const help = el("p.help", {}, "BarcodeDetector" in window ? t("res.scanHelp") : t("res.noCamera"));
  let stream = null;
  const stop = () => { stream?.getTracks().forEach((tr) => tr.stop()); stream = null; };
  const scan = async () => {
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream; video.hidden = false; await video.play();
    while (stream) {
      const found = await detector.detect(video).catch(() => []);
      const text = found[0]?.rawValue;
      if (text) { stop(); code.value = text.split(/[/=]/).pop(); if (await checkIn(code.value)) close(); return; }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const close = modal(t("res.checkin"), el("form.stack", {
    onsubmit: async (e) => { e.preventDefault(); if (await checkIn(code.value.trim())) { stop(); close(); } },
  }, field(t("res.code"), code), el("button.primary", { type: "submit" }, t("act.checkin")),
  "BarcodeDetector" in window ? el("button", { type: "button", onclick: () => scan().catch((err) => { stop(); toast(err.message, "error"); }) }, `◎ ${t("act.scan")}`) : null,
  help, video));
  document.getElementById("dlg").addEventListener("close", stop, { once: true });
  code.focus();
}

/// Opens the reservation's QR (rendered by the daemon) in a printable page.
async function printQr(r) {
  const res = await attempt(() => api(`/reservations/${r.id}/qr.svg`, { raw: true }));
  if (!res) return;
  if (!res.ok) { toast(`HTTP ${res.status}`, "error"); return; }
  const svg = await res.text();
  const win = window.open("", "_blank");
  if (!win) return;
  const doc = win.document;
  doc.title = `${r.name} · ${r.code}`;
  const box = doc.createElement("div");
  box.style.cssText = "font:16px sans-serif;text-align:center;max-width:320px;margin:2rem auto";
  const img = doc.createElement("img");
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  img.style.width = "100%";
  const caption = doc.createElement("p");
  caption.textContent = `${r.name} · ${dateTime(r.at)} · ${r.code}`;
  box.append(img, caption);
  doc.body.append(box);
  img.onload = () => win.print();
}
