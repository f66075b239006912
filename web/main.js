// The floor page (`/`): wires the live connection to the floor plan, the
// host stand, the alerts panel and, for an admin token, the admin views.
import { api, attempt, el, setToken, site, state, toast, token } from "./core.js";
import { Live, badgeElement } from "./live.js";
import { FloorPlan, ICONS } from "./floor.js";
import { loadWaitlist, modal, renderReservations, renderWaitlist, tableDialog } from "./host.js";
import { muteButton, renderAlerts, ringFor } from "./alerts.js";
import { Editor, Monitor, renderAnalytics, renderSensors } from "./admin.js";
import { renderCertificate, renderTablets } from "./devices.js";
import { t, translatePage } from "./i18n.js";

const info = await site();
translatePage();
if (info.site) document.getElementById("site").textContent = info.site;
const admin = info.role === "admin";
const $ = (id) => document.getElementById(id);

const badge = badgeElement();
$("status").append(badge, muteButton(), el("button.token", { type: "button", "data-action": "token", "aria-label": t("act.token"), onclick: tokenDialog }, "⚷", el("span.text", {}, t("act.token"))));
$("legend").replaceChildren(...["free", "occupied", "reserved", "dirty", "unknown"].map((s) =>
  el("span.key", {}, el(`i.${s}`, { "aria-hidden": "true" }, ICONS[s]), ` ${t(`state.${s}`)}`)));

const plan = new FloorPlan({ box: $("plan"), tabs: $("zones"), onTap: (x) => tableDialog(x) });
const editor = new Editor($("admin-editor"));
const monitor = new Monitor($("admin-monitor"));

// Views: #floor (default), #reservations, #admin/<part>.
const views = ["floor", "reservations", "admin"];
const ADMIN_PARTS = ["editor", "monitor", "sensors", "analytics", "tablets", "certificate"];
function route() {
  const [view, part = "editor"] = (location.hash.slice(1) || "floor").split("/");
  const current = views.includes(view) && (view !== "admin" || admin) ? view : "floor";
  for (const v of views) $(`view-${v}`).hidden = v !== current;
  for (const b of document.querySelectorAll("#nav a")) b.setAttribute("aria-current", String(b.dataset.view === current));
  if (current === "admin") {
    for (const p of ADMIN_PARTS) {
      $(`admin-${p}`).hidden = p !== part;
      document.querySelector(`#admin-tabs a[data-part=${p}]`)?.setAttribute("aria-selected", String(p === part));
    }
    if (part === "editor") editor.render();
    if (part === "monitor") monitor.load();
    if (part === "sensors") renderSensors($("admin-sensors"));
    if (part === "analytics") renderAnalytics($("admin-analytics"));
    if (part === "tablets") renderTablets($("admin-tablets"));
    if (part === "certificate") renderCertificate($("admin-certificate"));
  }
  draw("all");
}
$("nav").replaceChildren(...views.filter((v) => v !== "admin" || admin).map((v) =>
  el("a", { href: `#${v}`, dataset: { view: v } }, t(`nav.${v}`))));
$("admin-tabs").replaceChildren(...ADMIN_PARTS.map((p) =>
  el("a.tab", { href: `#admin/${p}`, role: "tab", dataset: { part: p } }, t(`admin.${p}`))));
window.addEventListener("hashchange", route);

function draw(what) {
  if (!$("view-floor").hidden) {
    plan.render();
    renderAlerts($("alerts"));
    renderWaitlist($("waitlist"));
  }
  if (!$("view-reservations").hidden) renderReservations($("reservations"));
  if (!$("view-admin").hidden && !$("admin-editor").hidden && (what === "all" || what.startsWith("table."))) editor.render();
  const open = state.alerts.size;
  document.querySelector("#nav a[data-view=floor]")?.setAttribute("data-alerts", open ? String(open) : "");
}
state.listeners.add(draw);
// Times in state ("ocupada 42 min") move on their own.
setInterval(() => draw("tick"), 15000);

const live = new Live({
  badge,
  onSnapshot: () => loadWaitlist(),
  onEvent: (ev) => { ringFor(ev); monitor.push(ev); },
  // A revoked tablet: say so and ask for a token (pair it again).
  onDenied: () => { toast(t("live.deniedNote"), "error"); tokenDialog(); },
});
live.start();
route();

function tokenDialog() {
  const input = el("input", { name: "token", type: "password", autocomplete: "off", value: token() });
  const close = modal(t("token.prompt"), el("form.stack", {
    onsubmit: (e) => {
      e.preventDefault();
      setToken(input.value.trim());
      close();
      location.reload();
    },
  }, el("label.field", {}, el("span", {}, t("act.token")), input), el("p.help", {}, t("token.help")),
  el("button.primary", { type: "submit" }, t("act.signin"))));
  input.focus();
}

// An expired or missing token shows the sign-in at once.
if (!info.offline && info.role === null && !token()) attempt(() => api("/snapshot")).then((ok) => { if (!ok) tokenDialog(); });

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
