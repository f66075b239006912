// The service worker: keeps the app shell (pages, scripts, styles, icon)
// so a tablet opens the app while the Pi restarts and shows "sin
// conexión" instead of a browser error. Network first (a new binary's app
// shows up at once), the cached copy when the network fails. Live data is
// never cached: /api/*, the streams and /metrics go straight to the
// network.
const CACHE = "mesero-shell-v2";
const SHELL = [
  "/", "/kitchen", "/pair", "/manifest.webmanifest",
  "/app/app.css", "/app/i18n.js", "/app/core.js", "/app/live.js", "/app/floor.js", "/app/host.js",
  "/app/alerts.js", "/app/admin.js", "/app/devices.js", "/app/charts.js", "/app/main.js", "/app/kitchen.js", "/app/pair.js",
  "/app/icon.svg",
];

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function shellPath(url) {
  if (url.origin !== self.location.origin) return null;
  const path = url.pathname;
  return SHELL.includes(path) ? path : null;
}

self.addEventListener("fetch", (e) => {
  if (e.request.method !== "GET") return;
  const path = shellPath(new URL(e.request.url));
  // Not part of the shell (the API, streams, QR codes, metrics): the
  // browser fetches it as if there were no service worker.
  if (!path) return;
  e.respondWith(fetch(e.request).then((res) => {
    if (res.ok) {
      const copy = res.clone();
      caches.open(CACHE).then((c) => c.put(path, copy));
    }
    return res;
  }).catch(() => caches.match(path).then((hit) => hit ?? Response.error())));
});
