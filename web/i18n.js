// Every string the app shows, in Spanish (the default) and English, and the
// date/time formatting in the site's time zone. `site.language` picks the
// table (GET /api/v1/ui); a key missing in one language falls back to
// Spanish, then to the key itself.

const es = {
  "state.free": "disponible", "state.occupied": "ocupada", "state.reserved": "reservada",
  "state.dirty": "por limpiar", "state.unknown": "sin datos",
  "nav.floor": "Sala", "nav.reservations": "Reservas", "nav.admin": "Admin",
  "zone.all": "Todas",
  "live.live": "en vivo", "live.reconnecting": "reconectando", "live.offline": "sin conexión",
  "live.polling": "sin tiempo real · consultando", "live.denied": "sin permiso", "live.deniedNote": "Este dispositivo ya no tiene acceso (clave revocada). Empareje de nuevo o escriba una clave.", "live.connecting": "conectando",
  "live.age": "última actualización hace {age}", "live.never": "sin datos todavía",
  "live.stale": "Estado de hace {age}: puede no ser el actual.",
  "live.pollNote": "El tiempo real no responde: se consulta el estado cada {s} s.",
  "age.s": "{n} s", "age.m": "{n} min", "age.h": "{n} h",
  "table": "Mesa {n}", "seats": "{n} plazas", "people": "{n} pers.", "peopleOfSeats": "{n}/{of} pers.", "seatsShort": "{n} pl.",
  "inState": "{state} {age}", "freeIn": "libre en ~{n} min", "freeSoon": "libre ya (previsto)",
  "holdUntil": "retenida hasta {t}", "resDue": "reserva {t}",
  "noData": "sin datos",
  "act.setState": "Cambiar estado", "act.hold": "Retener (min)", "act.seat": "Sentar grupo",
  "act.partySize": "Personas", "act.cancel": "Cerrar", "act.save": "Guardar", "act.add": "Añadir",
  "act.remove": "Quitar", "act.edit": "Editar", "act.ack": "Atendido", "act.print": "Imprimir QR",
  "act.checkin": "Llegada", "act.scan": "Escanear QR", "act.delete": "Borrar",
  "act.newTable": "Nueva mesa", "act.signin": "Entrar", "act.mute": "Silenciar", "act.unmute": "Con sonido",
  "act.seatParty": "Sentar", "act.token": "Clave",
  "recent": "Últimos cambios", "recent.none": "Sin cambios recientes.",
  "waitlist": "Lista de espera", "waitlist.none": "Nadie esperando.",
  "waitlist.name": "Nombre", "waitlist.size": "Personas", "waitlist.phone": "Teléfono",
  "waitlist.quote": "espera ~{a}–{b} min", "waitlist.noWait": "sin espera", "waitlist.quoted": "dicho: {n} min",
  "waitlist.readyAt": "mesa lista: {tables}",
  "waitlist.waiting": "esperando {age}", "waitlist.quoteTold": "Espera dicha (min)",
  "reservations": "Reservas de hoy", "reservations.none": "No hay reservas hoy.",
  "res.name": "Nombre", "res.size": "Personas", "res.time": "Hora", "res.table": "Mesa",
  "res.phone": "Teléfono", "res.notes": "Notas", "res.code": "Código",
  "res.status.booked": "reservada", "res.status.seated": "sentada", "res.status.no_show": "no vino",
  "res.status.cancelled": "cancelada", "res.new": "Nueva reserva", "res.checkin": "Llegada por código",
  "res.checkedIn": "Llegada registrada: {name}", "res.scanHelp": "Apunte la cámara al código QR.",
  "res.noCamera": "Este navegador no puede leer QR: escriba el código.",
  "alerts": "Avisos", "alerts.none": "Sin avisos abiertos.",
  "alert.kind.call": "llamada", "alert.kind.bill": "cuenta", "alert.kind.kitchen": "cocina",
  "alert.kind.refill": "reponer", "alert.kind.custom": "aviso",
  "alert.priority.normal": "normal", "alert.priority.high": "alta", "alert.priority.urgent": "urgente",
  "alert.default.call": "botón de llamada pulsado", "alert.default.bill": "piden la cuenta (pulsación larga)", "alert.count": "×{n}", "alert.ago": "hace {age}",
  "kitchen.title": "Cocina", "kitchen.none": "Nada pendiente.",
  "admin.editor": "Plano", "admin.monitor": "Eventos", "admin.sensors": "Sensores",
  "admin.analytics": "Análisis",
  "admin.dragHelp": "Arrastre una mesa para moverla; la esquina inferior derecha cambia su tamaño.",
  "admin.number": "Número", "admin.zone": "Zona", "admin.seats": "Plazas", "admin.shape": "Forma",
  "admin.joins": "Se une con (ids)", "admin.confirmDelete": "¿Borrar la mesa {n}?",
  "monitor.type": "Tipo", "monitor.table": "Mesa", "monitor.actor": "Quién",
  "sensors.none": "No hay sensores configurados.", "sensors.fault": "fallo",
  "sensors.last": "última lectura hace {age}",
  "an.none": "Todavía no hay análisis (el servidor no los ofrece o faltan datos).",
  "an.utilization": "Ocupación por día y hora", "an.turns": "Rotaciones por mesa",
  "an.bySize": "Tiempo de mesa por tamaño de grupo (mediana y p80, min)",
  "an.covers": "Comensales por día", "an.noShows": "No presentados", "an.walkAways": "Se fueron sin mesa",
  "an.ack": "Tiempo de respuesta a avisos", "an.uptime": "Disponibilidad de sensores",
  "an.quotes": "Precisión de la espera dicha (error medio, min)", "an.model": "modelo", "an.baseline": "referencia",
  "an.rate": "{n} de {of} ({pct})", "an.p50p90": "p50 {a} s · p90 {b} s",
  "days": "lun,mar,mié,jue,vie,sáb,dom",
  "err.network": "Sin conexión con el servidor.", "err.token": "Clave no válida o sin permiso.",
  "token.prompt": "Clave de acceso de este dispositivo", "token.help": "La clave se guarda en este dispositivo.",
  "pair.title": "Emparejar este dispositivo", "pair.working": "Emparejando…",
  "pair.done": "Listo: este dispositivo es «{name}» ({role}).", "pair.failed": "No se pudo emparejar: {msg}",
  "pair.noCode": "Falta el código de emparejamiento.", "pair.open": "Abrir la sala",
  "admin.tablets": "Tabletas", "admin.certificate": "Certificado",
  "role.staff": "personal", "role.viewer": "solo ver", "role.admin": "admin",
  "dev.help": "Empareje una tableta nueva: escanéela con el QR (o abra la dirección) en la tableta. El código vale una vez.",
  "dev.name": "Nombre", "dev.namePlaceholder": "tableta-barra", "dev.role": "Permiso", "dev.create": "Crear emparejamiento",
  "dev.scan": "Escanee con «{name}»", "dev.used": "✓ «{name}»: {status} (este código ya no sirve)", "dev.until": "Válido hasta {t}, una sola vez.",
  "dev.list": "Dispositivos", "dev.none": "Ninguna tableta emparejada.",
  "dev.status.pending": "esperando el QR", "dev.status.paired": "emparejada", "dev.revoke": "Revocar", "dev.confirmRevoke": "¿Revocar «{name}»? Dejará de funcionar al instante.",
  "err.qr": "No se pudo cargar el QR",
  "cert.off": "HTTPS está apagado (http.tls_listen vacío).",
  "cert.scan": "Instale la CA en cada tableta: escanee este QR", "cert.download": "Descarga",
  "cert.fingerprint": "Huella SHA-256", "cert.caExpires": "CA", "cert.expires": "Certificado del Pi", "cert.renewed": "caduca {t}; se renueva solo", "cert.caUntil": "caduca {t}; no se renueva",
  "cert.urls": "Direcciones HTTPS", "cert.how": "Cómo instalar la CA",
  "cert.android": "Abra el enlace del QR en Chrome: descarga mesero-ca.crt.|Ajustes → Seguridad y privacidad → Más ajustes de seguridad → Cifrado y credenciales → Instalar un certificado → Certificado de CA → Instalar de todas formas (los menús cambian según el fabricante: busque «certificado de CA»).|Elija mesero-ca.crt.|Abra una de las direcciones HTTPS de arriba y añádala a la pantalla de inicio.",
  "cert.ios": "Abra el enlace del QR en Safari → Permitir (se descarga un perfil).|Ajustes → Perfil descargado → Instalar (código) → Instalar.|Ajustes → General → Información → Ajustes de confianza de certificados: active la confianza total en «mesero local CA». Sin este paso Safari sigue rechazando el certificado.|Abra una de las direcciones HTTPS de arriba y añádala a la pantalla de inicio.",
 
};

const en = {
  "state.free": "free", "state.occupied": "occupied", "state.reserved": "reserved",
  "state.dirty": "to clean", "state.unknown": "no data",
  "nav.floor": "Floor", "nav.reservations": "Bookings", "nav.admin": "Admin",
  "zone.all": "All",
  "live.live": "live", "live.reconnecting": "reconnecting", "live.offline": "offline",
  "live.polling": "not live · polling", "live.denied": "no access", "live.deniedNote": "This device no longer has access (its token was revoked). Pair it again or type a token.", "live.connecting": "connecting",
  "live.age": "last update {age} ago", "live.never": "no data yet",
  "live.stale": "State from {age} ago: it may not be current.",
  "live.pollNote": "The live stream is down: polling the state every {s} s.",
  "age.s": "{n} s", "age.m": "{n} min", "age.h": "{n} h",
  "table": "Table {n}", "seats": "{n} seats", "people": "{n} ppl", "peopleOfSeats": "{n}/{of} ppl", "seatsShort": "{n} seats",
  "inState": "{state} {age}", "freeIn": "free in ~{n} min", "freeSoon": "due to free now",
  "holdUntil": "held until {t}", "resDue": "booking {t}",
  "noData": "no data",
  "act.setState": "Set state", "act.hold": "Hold (min)", "act.seat": "Seat party",
  "act.partySize": "Party size", "act.cancel": "Close", "act.save": "Save", "act.add": "Add",
  "act.remove": "Remove", "act.edit": "Edit", "act.ack": "Done", "act.print": "Print QR",
  "act.checkin": "Check in", "act.scan": "Scan QR", "act.delete": "Delete",
  "act.newTable": "New table", "act.signin": "Sign in", "act.mute": "Mute", "act.unmute": "Sound on",
  "act.seatParty": "Seat", "act.token": "Token",
  "recent": "Recent changes", "recent.none": "No recent changes.",
  "waitlist": "Waitlist", "waitlist.none": "Nobody waiting.",
  "waitlist.name": "Name", "waitlist.size": "Party size", "waitlist.phone": "Phone",
  "waitlist.quote": "wait ~{a}–{b} min", "waitlist.noWait": "no wait", "waitlist.quoted": "told: {n} min",
  "waitlist.readyAt": "table ready: {tables}",
  "waitlist.waiting": "waiting {age}", "waitlist.quoteTold": "Quoted wait (min)",
  "reservations": "Today's bookings", "reservations.none": "No bookings today.",
  "res.name": "Name", "res.size": "Party size", "res.time": "Time", "res.table": "Table",
  "res.phone": "Phone", "res.notes": "Notes", "res.code": "Code",
  "res.status.booked": "booked", "res.status.seated": "seated", "res.status.no_show": "no-show",
  "res.status.cancelled": "cancelled", "res.new": "New booking", "res.checkin": "Check in by code",
  "res.checkedIn": "Checked in: {name}", "res.scanHelp": "Point the camera at the QR code.",
  "res.noCamera": "This browser cannot read QR codes: type the code.",
  "alerts": "Alerts", "alerts.none": "No open alerts.",
  "alert.kind.call": "call", "alert.kind.bill": "bill", "alert.kind.kitchen": "kitchen",
  "alert.kind.refill": "refill", "alert.kind.custom": "alert",
  "alert.priority.normal": "normal", "alert.priority.high": "high", "alert.priority.urgent": "urgent",
  "alert.default.call": "call button pressed", "alert.default.bill": "bill requested (long press)", "alert.count": "×{n}", "alert.ago": "{age} ago",
  "kitchen.title": "Kitchen", "kitchen.none": "Nothing pending.",
  "admin.editor": "Floor plan", "admin.monitor": "Events", "admin.sensors": "Sensors",
  "admin.analytics": "Analytics",
  "admin.dragHelp": "Drag a table to move it; its bottom-right corner resizes it.",
  "admin.number": "Number", "admin.zone": "Zone", "admin.seats": "Seats", "admin.shape": "Shape",
  "admin.joins": "Joins with (ids)", "admin.confirmDelete": "Delete table {n}?",
  "monitor.type": "Type", "monitor.table": "Table", "monitor.actor": "Who",
  "sensors.none": "No sensors configured.", "sensors.fault": "fault",
  "sensors.last": "last reading {age} ago",
  "an.none": "No analytics yet (the server does not offer them, or there is no data).",
  "an.utilization": "Occupancy by weekday and hour", "an.turns": "Turns per table",
  "an.bySize": "Table time by party size (median and p80, min)",
  "an.covers": "Covers per day", "an.noShows": "No-shows", "an.walkAways": "Walk-aways",
  "an.ack": "Alert response time", "an.uptime": "Sensor uptime",
  "an.quotes": "Quoted wait accuracy (mean error, min)", "an.model": "model", "an.baseline": "baseline",
  "an.rate": "{n} of {of} ({pct})", "an.p50p90": "p50 {a} s · p90 {b} s",
  "days": "Mon,Tue,Wed,Thu,Fri,Sat,Sun",
  "err.network": "No connection to the server.", "err.token": "Invalid token or not allowed.",
  "token.prompt": "Access token for this device", "token.help": "The token is kept on this device.",
  "pair.title": "Pair this device", "pair.working": "Pairing…",
  "pair.done": "Done: this device is “{name}” ({role}).", "pair.failed": "Pairing failed: {msg}",
  "pair.noCode": "The pairing code is missing.", "pair.open": "Open the floor",
  "admin.tablets": "Tablets", "admin.certificate": "Certificate",
  "role.staff": "staff", "role.viewer": "view only", "role.admin": "admin",
  "dev.help": "Pair a new tablet: scan the QR code (or open the address) on the tablet. The code works once.",
  "dev.name": "Name", "dev.namePlaceholder": "bar-tablet", "dev.role": "Permission", "dev.create": "Create pairing",
  "dev.scan": "Scan with “{name}”", "dev.used": "✓ “{name}”: {status} (this code is used up)", "dev.until": "Valid until {t}, once.",
  "dev.list": "Devices", "dev.none": "No paired tablets.",
  "dev.status.pending": "waiting for the QR", "dev.status.paired": "paired", "dev.revoke": "Revoke", "dev.confirmRevoke": "Revoke “{name}”? It stops working at once.",
  "err.qr": "Could not load the QR code",
  "cert.off": "HTTPS is off (http.tls_listen is empty).",
  "cert.scan": "Install the CA on each tablet: scan this QR code", "cert.download": "Download",
  "cert.fingerprint": "SHA-256 fingerprint", "cert.caExpires": "CA", "cert.expires": "The Pi's certificate", "cert.renewed": "expires {t}; renewed on its own", "cert.caUntil": "expires {t}; never renewed",
  "cert.urls": "HTTPS addresses", "cert.how": "How to install the CA",
  "cert.android": "Open the QR link in Chrome: it downloads mesero-ca.crt.|Settings → Security and privacy → More security settings → Encryption & credentials → Install a certificate → CA certificate → Install anyway (menu names vary by maker: search settings for “CA certificate”).|Pick mesero-ca.crt.|Open one of the HTTPS addresses above and add it to the home screen.",
  "cert.ios": "Open the QR link in Safari → Allow (a configuration profile is downloaded).|Settings → Profile Downloaded → Install (passcode) → Install.|Settings → General → About → Certificate Trust Settings: turn on full trust for “mesero local CA”. Without this step Safari still refuses the certificate.|Open one of the HTTPS addresses above and add it to the home screen.",
 
};

const TABLES = { es, en };
let lang = "es";
let zone;

/// Picks the language and time zone (from GET /api/v1/ui).
export function configure(language, timezone) {
  if (TABLES[language]) lang = language;
  zone = timezone || undefined;
  document.documentElement.lang = lang;
}

export function language() { return lang; }

/// The string `key` with `{name}` placeholders filled from `vars`.
export function t(key, vars = {}) {
  const s = TABLES[lang][key] ?? es[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ""));
}

/// "42 s", "15 min", "3 h" for a duration in milliseconds.
export function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t("age.s", { n: s });
  const m = Math.floor(s / 60);
  if (m < 120) return t("age.m", { n: m });
  return t("age.h", { n: Math.floor(m / 60) });
}

function format(opts) {
  try {
    return new Intl.DateTimeFormat(lang, { timeZone: zone, ...opts });
  } catch {
    return new Intl.DateTimeFormat(lang, opts);
  }
}

/// "21:30" in the site's zone.
export function time(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : format({ hour: "2-digit", minute: "2-digit" }).format(d);
}

/// "lun 30 nov, 21:30" in the site's zone.
export function dateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : format({ weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }).format(d);
}

/// "26 nov 2036" in the site's zone (expiry dates years away).
export function longDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : format({ day: "numeric", month: "short", year: "numeric" }).format(d);
}

/// Today's date (YYYY-MM-DD) in the site's zone.
export function today(now = new Date()) {
  const parts = format({ year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(now);
  const get = (type) => parts.find((p) => p.type === type)?.value;
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/// Applies `data-i18n` keys to an already written page.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
