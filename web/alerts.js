// Open alerts by priority (urgent first, then oldest), with ack; a tone
// (WebAudio) and a vibration when an urgent one opens or escalates, unless
// muted (localStorage "mesero.mute"). `document.body.dataset.rings` counts
// the tones, so a test can tell that one rang.
import { api, attempt, el, now, state } from "./core.js";
import { age, t } from "./i18n.js";

const RANK = { urgent: 0, high: 1, normal: 2 };
let audio = null;

export function muted() { return localStorage.getItem("mesero.mute") === "1"; }
export function setMuted(on) { localStorage.setItem("mesero.mute", on ? "1" : "0"); }

/// The open alerts for `target` ("" = all), most pressing first.
export function openAlerts(target = "") {
  return [...state.alerts.values()]
    .filter((a) => !target || a.target === target || a.target === "all")
    .sort((a, b) => (RANK[a.priority] ?? 3) - (RANK[b.priority] ?? 3) || a.created_at.localeCompare(b.created_at));
}

// The daemon's message for an alert raised without one
// (`alerts::default_message`, English): shown in the site's language.
const DEFAULT_MESSAGES = { call: "call button pressed", bill: "bill requested (long press)", kitchen: "kitchen", refill: "refill", custom: "alert" };
function message(a) {
  if (!a.message || a.message !== DEFAULT_MESSAGES[a.kind]) return a.message;
  return a.kind === "call" || a.kind === "bill" ? t(`alert.default.${a.kind}`) : "";
}

export function alertItem(a, { big = false } = {}) {
  const where = a.table != null ? `${t("table", { n: state.tables.get(a.table)?.number ?? a.table })} · ` : "";
  return el(`li.alert.${a.priority}${big ? ".big" : ""}`, { dataset: { id: a.id, priority: a.priority, target: a.target } },
    el("div.what", {},
      el("span.prio", {}, a.priority === "urgent" ? "‼ " : a.priority === "high" ? "! " : "", t(`alert.priority.${a.priority}`)),
      " · ", where, t(`alert.kind.${a.kind}`), a.count > 1 ? ` ${t("alert.count", { n: a.count })}` : ""),
    message(a) ? el("div.msg", {}, message(a)) : null,
    el("div.when", {}, t("alert.ago", { age: age(now() - Date.parse(a.created_at)) })),
    el("button.primary.ack", { type: "button", "data-action": "ack",
      onclick: () => attempt(async () => {
        const out = await api(`/alerts/${a.id}/ack`, { method: "POST" });
        if (out?.alert) { state.alerts.delete(a.id); state.changed("alert.acked"); }
      }) }, `✓ ${t("act.ack")}`));
}

export function renderAlerts(box, target = "") {
  const list = openAlerts(target);
  box.replaceChildren(el("header.panel-head", {}, el("h2", {}, t("alerts"), list.length ? el("span.count", {}, String(list.length)) : null)),
    list.length ? el("ul.alerts", {}, ...list.map((a) => alertItem(a))) : el("p.empty", {}, t("alerts.none")));
}

/// Rings for an event that opened or escalated an urgent alert of `target`.
export function ringFor(ev, target = "") {
  const a = ev.data?.alert;
  if (!a || a.acked_at || a.priority !== "urgent") return;
  if (ev.type !== "alert.raised" && ev.type !== "alert.escalated") return;
  if (target && a.target !== target && a.target !== "all") return;
  ring();
}

export function ring() {
  document.body.dataset.rings = String(Number(document.body.dataset.rings || 0) + 1);
  if (muted()) return;
  navigator.vibrate?.([200, 100, 200]);
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const start = audio.currentTime;
    for (const [i, freq] of [880, 660, 880].entries()) {
      const osc = audio.createOscillator(), gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.4, start + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.25 + 0.22);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + i * 0.25); osc.stop(start + i * 0.25 + 0.24);
    }
  } catch {
    // No audio device (or not allowed yet): the vibration and the list stay.
  }
}

/// The mute toggle; the first tap also unlocks audio (autoplay rules).
export function muteButton() {
  const b = el("button.mute", { type: "button", "data-action": "mute" });
  const draw = () => {
    const label = muted() ? t("act.unmute") : t("act.mute");
    b.replaceChildren(muted() ? "♪̸" : "♪", el("span.text", {}, label));
    b.setAttribute("aria-label", label);
    b.setAttribute("aria-pressed", String(muted()));
  };
  b.onclick = () => { setMuted(!muted()); audio ??= new AudioContext(); audio.resume?.(); draw(); };
  draw();
  return b;
}
