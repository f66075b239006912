// The kitchen screen (`/kitchen`): only alerts with target kitchen (or
// all), in big type, with ack; rings on urgent ones. Its stream is
// filtered server-side (`types=alert&targets=kitchen`).
import { el, site, state } from "./core.js";
import { Live, badgeElement } from "./live.js";
import { alertItem, muteButton, openAlerts, ringFor } from "./alerts.js";
import { t } from "./i18n.js";

const info = await site();
document.getElementById("title").textContent = `${t("kitchen.title")}${info.site ? ` · ${info.site}` : ""}`;
document.title = `mesero · ${t("kitchen.title")}`;
const badge = badgeElement();
document.getElementById("status").append(badge, muteButton());
const list = document.getElementById("kitchen-alerts");

function draw() {
  const alerts = openAlerts("kitchen");
  list.replaceChildren(...(alerts.length ? alerts.map((a) => alertItem(a, { big: true })) : [el("li.empty", {}, t("kitchen.none"))]));
}
state.listeners.add(draw);
setInterval(draw, 15000);

new Live({
  badge,
  path: "/api/v1/stream?types=alert&targets=kitchen",
  onEvent: (ev) => ringFor(ev, "kitchen"),
}).start();
draw();

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
