// `/pair?code=CODE` (the QR the admin page shows): trades the one-time
// code for this device's token (POST /api/v1/pair {"code"} →
// {"token", "role", "name"}), keeps it in localStorage "mesero.token",
// and offers the floor plan.
import { api, setToken, site } from "./core.js";
import { t } from "./i18n.js";

await site();
const $ = (id) => document.getElementById(id);
$("title").textContent = t("pair.title");
const code = new URLSearchParams(location.search).get("code");
const open = $("open");
open.textContent = t("pair.open");

if (!code) {
  $("message").textContent = t("pair.noCode");
} else {
  $("message").textContent = t("pair.working");
  try {
    const out = await api("/pair", { method: "POST", body: { code } });
    setToken(out.token);
    // The code is used up: keep it out of the history.
    history.replaceState(null, "", "/pair");
    $("message").textContent = t("pair.done", { name: out.name, role: out.role });
    open.hidden = false;
  } catch (e) {
    $("message").textContent = t("pair.failed", { msg: e.message });
  }
}
