// The live connection: one EventSource that resumes by seq, a badge that
// says whether what is on screen is live, and polling of /api/v1/snapshot
// when the stream stays down.
//
// States: "connecting" → "live" (stream open; a first attempt that fails
// goes straight to "offline") → "reconnecting" (it broke;
// EventSource retries on its own, and a closed one is reopened with
// ?since=<last seq>) → after `offlineAfter` down: "offline" ("sin
// conexión"), and the snapshot is polled; a poll that answers while the
// stream does not gives "polling". Only "live" is drawn as live: the plan
// is dimmed and the age of the last update shown in every other state.
// `?offline_after=<seconds>` shortens the 30 s threshold (tests).
// A stream the daemon refuses while /api/v1/ui no longer knows the
// device's token (a revoked tablet) goes to "denied": no more retries,
// and `onDenied` asks for a new token.
import { api, applyEvent, applySnapshot, now, query, state, token } from "./core.js";
import { age, t } from "./i18n.js";

const OFFLINE_AFTER_MS = 1000 * (Number(query.get("offline_after")) || 30);
const POLL_MS = Math.min(5000, OFFLINE_AFTER_MS);
const REOPEN_MS = 1000;

export class Live {
  /// `path`: the stream with its filters; `onSnapshot` runs after every
  /// snapshot (stream or poll), e.g. to reload the waitlist.
  constructor({ path = "/api/v1/stream", onSnapshot = () => {}, onEvent = () => {}, onDenied = () => {}, snapshotPath = "/snapshot", badge }) {
    this.path = path; this.onDenied = onDenied; this.onSnapshot = onSnapshot; this.onEvent = onEvent; this.snapshotPath = snapshotPath;
    this.badge = badge; this.status = "connecting"; this.lastUpdate = 0; this.downSince = now();
    this.es = null; this.pollTimer = null; this.reopenTimer = null;
    setInterval(() => this.tick(), 1000);
  }

  start() { this.open(); this.render(); }

  url() {
    const params = new URLSearchParams();
    if (token()) params.set("token", token());
    if (state.seq > 0) params.set("since", String(state.seq));
    const sep = this.path.includes("?") ? "&" : "?";
    const q = params.toString();
    return q ? `${this.path}${sep}${q}` : this.path;
  }

  open() {
    clearTimeout(this.reopenTimer);
    if (this.es) this.es.close();
    const es = new EventSource(this.url());
    this.es = es;
    es.onopen = () => { if (this.es === es) this.set("live"); };
    es.onerror = () => {
      if (this.es !== es) return;
      if (this.status === "live") { this.downSince = now(); this.set("reconnecting"); }
      // Never connected since the page opened (the shell came from the
      // service worker while the Pi is down): say so at once.
      else if (this.status === "connecting") { this.set("offline"); this.poll(); }
      // Closed (an HTTP error, not a dropped connection): EventSource gives
      // up, so reopen it ourselves, resuming from the last seq we applied.
      if (es.readyState === EventSource.CLOSED) this.reopenTimer = setTimeout(() => this.reopen(), REOPEN_MS);
    };
    es.addEventListener("snapshot", (e) => {
      applySnapshot(JSON.parse(e.data));
      this.updated();
      this.onSnapshot();
    });
    es.onmessage = (e) => this.event(e);
    for (const type of EVENT_TYPES) es.addEventListener(type, (e) => this.event(e));
  }

  /// Reopens a closed stream, unless the daemon no longer accepts the token.
  async reopen() {
    if (token()) {
      const info = await api("/ui").catch(() => null);
      if (info && info.role === null) {
        if (this.es) this.es.close();
        clearTimeout(this.pollTimer);
        this.set("denied");
        this.onDenied();
        return;
      }
    }
    this.open();
  }

  event(e) {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev.seq && ev.seq <= state.seq) return;
    applyEvent(ev);
    this.onEvent(ev);
    this.updated();
    // The restarted daemon's first event: the stream is back.
    if (this.status !== "live") this.set("live");
  }

  updated() { this.lastUpdate = now(); this.render(); }

  set(status) {
    this.status = status;
    if (status === "live") { clearTimeout(this.pollTimer); this.pollTimer = null; }
    this.render();
  }

  tick() {
    const down = this.status !== "live";
    if (down && now() - this.downSince >= OFFLINE_AFTER_MS && !["offline", "polling", "denied"].includes(this.status)) {
      this.set("offline");
      this.poll();
    }
    this.render();
  }

  async poll() {
    if (this.status === "live" || this.status === "denied") return;
    try {
      const snap = await api(this.snapshotPath);
      if (this.status === "live" || this.status === "denied") return;
      applySnapshot(snap);
      this.lastUpdate = now();
      this.status = "polling";
      this.onSnapshot();
      // The stream may have given up for good; try it again too.
      if (!this.es || this.es.readyState === EventSource.CLOSED) this.open();
    } catch {
      if (this.status === "denied") return;
      if (this.status !== "live") this.status = "offline";
    }
    this.render();
    if (this.status !== "live") this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  render() {
    const b = this.badge;
    if (!b) return;
    const ageText = this.lastUpdate ? t("live.age", { age: age(now() - this.lastUpdate) }) : t("live.never");
    b.className = `badge ${this.status}`;
    b.dataset.status = this.status;
    b.querySelector(".label").textContent = t(`live.${this.status}`);
    b.querySelector(".age").textContent = this.status === "live" ? "" : ageText;
    b.title = ageText;
    document.body.classList.toggle("stale", this.status !== "live");
    const note = document.getElementById("stale-note");
    if (note) {
      note.hidden = this.status === "live" || this.status === "connecting";
      note.textContent = this.status === "polling"
        ? `${t("live.pollNote", { s: POLL_MS / 1000 })} ${ageText}`
        : t("live.stale", { age: this.lastUpdate ? age(now() - this.lastUpdate) : "—" });
    }
  }
}

/// Every SPEC §1 event type (EventSource needs a listener per `event:`).
export const EVENT_TYPES = [
  "table.state", "table.created", "table.updated", "table.deleted",
  "reservation.created", "reservation.updated", "reservation.cancelled",
  "reservation.checked_in", "reservation.no_show", "waitlist.added",
  "waitlist.updated", "waitlist.ready", "waitlist.seated", "waitlist.left",
  "alert.raised", "alert.updated", "alert.escalated", "alert.acked",
  "sensor.fault", "sensor.recovered", "system.started",
];

/// The badge element the Live class fills.
export function badgeElement() {
  const b = document.createElement("div");
  b.id = "live"; b.className = "badge connecting"; b.setAttribute("role", "status");
  b.innerHTML = '<span class="dot" aria-hidden="true"></span><span class="label"></span> <span class="age"></span>';
  return b;
}
