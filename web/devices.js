// Admin views for the tablets themselves: "Tablets" pairs a new device
// with a role (POST /api/v1/pairings: its QR code and the HTTPS pair URL)
// and lists the paired ones with revoke (GET, DELETE /api/v1/pairings);
// "Certificate" (GET /api/v1/tls) shows the QR code of the CA download,
// its fingerprint and expiry, the HTTPS addresses and how to install it.
import { api, attempt, el } from "./core.js";
import { dateTime, longDate, t } from "./i18n.js";

/// An <img> of an SVG QR code behind the token (an <img src> sends no
/// Authorization header): fetched, then shown from a blob URL.
async function qrImage(path, alt) {
  const res = await api(path.replace(/^\/api\/v1/, ""), { raw: true });
  if (!res.ok) return el("p.empty", {}, `${t("err.qr")} (HTTP ${res.status})`);
  const url = URL.createObjectURL(await res.blob());
  return el("img.qr", { src: url, alt, width: 200, height: 200, onload: () => URL.revokeObjectURL(url) });
}

// ---- tablets ----

/// The last pairing made here, kept while the admin moves between views;
/// marked used once its tablet paired.
const result = el("div.pair-result", {});

export async function renderTablets(box) {
  const name = el("input", { name: "name", required: true, maxlength: 64, placeholder: t("dev.namePlaceholder") });
  const role = el("select", { name: "role" }, ...["staff", "viewer", "admin"].map((r) => el("option", { value: r }, t(`role.${r}`))));
  const list = el("ul.pairings", {});
  const form = el("form.row.pair-form", {
    onsubmit: (e) => {
      e.preventDefault();
      attempt(async () => {
        const out = await api("/pairings", { method: "POST", body: { name: name.value.trim(), role: role.value } });
        result.replaceChildren(el("section.card", { dataset: { id: out.pairing.id } },
          el("h3", {}, t("dev.scan", { name: out.pairing.name })),
          await qrImage(out.qr, out.url),
          el("p", {}, el("a.pair-url", { href: out.url }, out.url)),
          el("p.help", {}, t("dev.until", { t: dateTime(out.expires_at) }))));
        name.value = "";
        await drawList(list);
      });
    },
  }, el("label.field", {}, el("span", {}, t("dev.name")), name),
  el("label.field", {}, el("span", {}, t("dev.role")), role),
  el("button.primary", { type: "submit", "data-action": "pair" }, t("dev.create")));
  box.replaceChildren(el("p.help", {}, t("dev.help")), form, result, el("h3", {}, t("dev.list")), list);
  await drawList(list);
}

async function drawList(list) {
  const out = await api("/pairings").catch(() => null);
  const all = out?.pairings ?? [];
  const card = result.firstElementChild;
  const made = card && all.find((p) => String(p.id) === card.dataset.id);
  if (made && made.status !== "pending" && !card.classList.contains("used")) {
    card.classList.add("used");
    card.querySelector("h3").textContent = t("dev.used", { name: made.name, status: t(`dev.status.${made.status}`) });
  }
  const shown = all.filter((p) => p.status === "paired" || p.status === "pending");
  if (!shown.length) { list.replaceChildren(el("li.empty", {}, t("dev.none"))); return; }
  list.replaceChildren(...shown.map((p) => el("li.pairing", { dataset: { id: p.id, status: p.status } },
    el("b", {}, p.name), ` · ${t(`role.${p.role}`)} · ${t(`dev.status.${p.status}`)}`,
    p.paired_at ? ` · ${dateTime(p.paired_at)}` : "",
    el("button.danger", { type: "button", "data-action": "revoke", onclick: () => {
      if (!confirm(t("dev.confirmRevoke", { name: p.name }))) return;
      attempt(async () => { await api(`/pairings/${p.id}`, { method: "DELETE" }); await drawList(list); });
    } }, t("dev.revoke")))));
}

// ---- certificate ----

export async function renderCertificate(box) {
  const info = await api("/tls").catch(() => null);
  if (!info?.enabled || !info.ca) {
    box.replaceChildren(el("p.empty", {}, info?.error ? `${t("cert.off")} (${info.error})` : t("cert.off")));
    return;
  }
  const figures = [
    [t("cert.download"), el("a", { href: info.ca.url }, info.ca.url)],
    [t("cert.fingerprint"), el("code.fingerprint", {}, info.ca.fingerprint_sha256 ?? "—")],
    [t("cert.caExpires"), info.ca.expires_at ? t("cert.caUntil", { t: longDate(info.ca.expires_at) }) : "—"],
    [t("cert.expires"), info.certificate?.expires_at ? t("cert.renewed", { t: longDate(info.certificate.expires_at) }) : "—"],
    [t("cert.urls"), el("span", {}, ...(info.https_urls ?? []).flatMap((u, i) => [i ? " · " : "", el("a", { href: u }, u)]))],
  ];
  const steps = (key) => el("ol", {}, ...t(key).split("|").map((s) => el("li", {}, s)));
  box.replaceChildren(el("section.card.cert", {},
    el("h3", {}, t("cert.scan")),
    el("div.row.cert-row", {}, await qrImage(info.ca.qr, info.ca.url),
      el("dl.figures", {}, ...figures.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))),
    el("details", { id: "install-steps" }, el("summary", { "data-action": "install-steps" }, t("cert.how")),
      el("h4", {}, "Android"), steps("cert.android"), el("h4", {}, "iPadOS / iOS"), steps("cert.ios"))));
}
