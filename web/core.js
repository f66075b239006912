// Shared by every page: the device's token, the API client, the state the
// live stream keeps (tables, alerts, reservations, waitlist), a tiny DOM
// helper and the clock offset to the Pi.
import { configure, t } from "./i18n.js";

const TOKEN_KEY = "mesero.token";
const params = new URLSearchParams(location.search);

// A token in the URL (a pairing link, a kiosk bookmark) is kept once and
// taken out of the address bar, so it is not left in screenshots or history.
if (params.get("token")) {
  localStorage.setItem(TOKEN_KEY, params.get("token"));
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
}

export const query = params;
export function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
}

/// Milliseconds to add to the device clock to get the Pi's (from the
/// `Date` header), so "ocupada 42 min" does not depend on a tablet's clock.
let skew = 0;
export function now() { return Date.now() + skew; }

/// An API error with the server's `{"error": {code, message}}`.
export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/// `fetch` of an API path with the token; JSON in and out. Throws ApiError.
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", t("err.network"));
  }
  if (raw) return res;
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    const err = json?.error ?? {};
    throw new ApiError(res.status, err.code ?? "http", err.message ?? `HTTP ${res.status}`);
  }
  return json;
}

/// GET /api/v1/ui: language, time zone and this token's role; sets the
/// clock offset. Falls back to Spanish and the device's zone offline.
export async function site() {
  try {
    const res = await api("/ui", { raw: true });
    const date = Date.parse(res.headers.get("Date") ?? "");
    if (!Number.isNaN(date)) skew = date - Date.now();
    const info = await res.json();
    localStorage.setItem("mesero.ui", JSON.stringify({ language: info.language, timezone: info.timezone, site: info.site }));
    configure(info.language, info.timezone);
    return info;
  } catch {
    const kept = JSON.parse(localStorage.getItem("mesero.ui") || "{}");
    configure(kept.language || "es", kept.timezone);
    return { ...kept, role: null, offline: true };
  }
}

/// `el("div.a.b", {title: "x", onclick}, child, "text")`.
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/// A short message at the bottom of the screen.
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts") ?? document.body.appendChild(el("div", { id: "toasts" }));
  const item = el(`div.toast.${kind}`, { role: "status" }, message);
  box.append(item);
  // The last message stays readable after the toast is gone (tests, support).
  document.body.dataset.lastMessage = message;
  setTimeout(() => item.remove(), 5000);
}

/// Runs `fn`, showing an ApiError as a toast; returns its result or undefined.
export async function attempt(fn) {
  try { return await fn(); } catch (e) {
    toast(e.status === 401 || e.status === 403 ? `${t("err.token")} (${e.message})` : e.message, "error");
    return undefined;
  }
}

/// What the live stream keeps; listeners re-render on change.
export const state = {
  tables: new Map(), alerts: new Map(), reservations: new Map(), waitlist: new Map(),
  seq: 0, listeners: new Set(),
  changed(what) { for (const fn of this.listeners) fn(what); },
};

function openAlert(a) { return a && !a.acked_at; }

/// Replaces everything from a snapshot object (SPEC §2).
export function applySnapshot(snap) {
  state.tables = new Map((snap.tables ?? []).map((x) => [x.id, x]));
  state.alerts = new Map((snap.alerts ?? []).filter(openAlert).map((a) => [a.id, a]));
  if (Array.isArray(snap.reservations)) state.reservations = new Map(snap.reservations.map((r) => [r.id, r]));
  state.seq = snap.seq ?? state.seq;
  state.changed("all");
}

/// Applies one event of the stream; returns what it was about.
export function applyEvent(ev) {
  const d = ev.data ?? {};
  state.seq = Math.max(state.seq, ev.seq ?? 0);
  const type = ev.type ?? "";
  if (type === "table.deleted") state.tables.delete(d.table?.id);
  else if (type.startsWith("table.") && d.table) state.tables.set(d.table.id, d.table);
  else if (type.startsWith("alert.") && d.alert) {
    if (openAlert(d.alert)) state.alerts.set(d.alert.id, d.alert); else state.alerts.delete(d.alert.id);
  } else if (type.startsWith("reservation.") && d.reservation) state.reservations.set(d.reservation.id, d.reservation);
  else if (type.startsWith("waitlist.") && d.party) {
    if (d.party.status === "waiting" || d.party.status === "notified") state.waitlist.set(d.party.id, d.party);
    else state.waitlist.delete(d.party.id);
  }
  state.changed(type);
  return type;
}

export { t };
