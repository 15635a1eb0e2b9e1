// The participant app's service worker: the app's own files are kept; pages are fetched
// from the network first and kept, so what was seen reads offline; nothing else is touched.
const CACHE = "aidpost-app-v1";
const SHELL = [
  "/app/offline",
  "/web/static/material.css",
  "/web/static/app.js",
  "/web/static/chat.js",
  "/web/static/appchat.js",
  "/web/static/icon.svg",
];
const LIVE = [/^\/app\/requests\/\d+\/status$/, /^\/app\/live\//, /^\/app\/sw\.js$/];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// Signing out: every page of this person goes; the app's own files stay (offline page).
self.addEventListener("message", (event) => {
  if (event.data?.type !== "forget") return;
  event.waitUntil(
    caches.open(CACHE).then(async (c) => {
      const shell = new Set(SHELL.map((p) => new URL(p, location.origin).href));
      for (const req of await c.keys()) if (!shell.has(req.url)) await c.delete(req);
    }),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== location.origin) return;
  if (!(url.pathname.startsWith("/app/") || url.pathname.startsWith("/web/static/"))) return;
  if (LIVE.some((re) => re.test(url.pathname))) return;
  event.respondWith(
    fetch(req)
      .then((res) => {
        // Keep pages and files that came back whole (not redirects to the sign-in page).
        if (res.ok && res.type === "basic" && !res.redirected) {
          const copy = res.clone();
          event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
        }
        return res;
      })
      .catch(async () => {
        const hit = await caches.match(req);
        if (hit) return hit;
        if (req.mode === "navigate") return (await caches.match("/app/offline")) || Response.error();
        return Response.error();
      }),
  );
});
