// sw.js — the service worker: keeps the app shell (index.html and the hashed assets it loads)
// so KitsuLAN opens without a network; the app then shows "offline, reconnecting". API calls
// (gRPC-Web POSTs, the gateway WebSocket, health probes) always go to the network.
// It also shows the app's message notifications (src/notify/notifications.ts) and the server's
// Web Push notifications while the app is closed (src/notify/push.ts); clicking one focuses the
// app and opens that conversation.
const CACHE = "kitsulan-shell-v2";
const SHELL = ["/", "/manifest.webmanifest", "/favicon.svg", "/icon-192.png", "/icon-512.png"];
// Every hashed file of this build, the lazily loaded chunks (calls, files) included, so an
// offline start has them all; filled in by scripts/compress.mjs after `vite build` (empty in dev).
const ASSETS = [/* kitsulan:assets */];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll([...SHELL, ...ASSETS]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => (ASSETS.length ? forgetOldAssets() : undefined))
      .then(() => self.clients.claim()),
  );
});

/** Drops hashed files of earlier builds from the cache. */
async function forgetOldAssets() {
  const cache = await caches.open(CACHE);
  const keep = new Set(ASSETS);
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/assets/") && !keep.has(path)) await cache.delete(req);
  }
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/v1/") || url.pathname === "/healthz" || url.pathname === "/readyz") return;
  if (req.mode === "navigate") {
    // Network first, so a new version is picked up; the cached shell when offline.
    event.respondWith(
      fetch(req)
        .then((res) => {
          const copy = res.clone();
          void caches.open(CACHE).then((c) => c.put("/", copy));
          return res;
        })
        .catch(() => caches.match("/").then((r) => r ?? Response.error())),
    );
    return;
  }
  // Hashed assets never change: cache first.
  event.respondWith(
    caches.match(req).then(
      (hit) =>
        hit ??
        fetch(req).then((res) => {
          if (res.ok && url.pathname.startsWith("/assets/")) {
            const copy = res.clone();
            void caches.open(CACHE).then((c) => c.put(req, copy));
          }
          return res;
        }),
    ),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const conversationId = event.notification.data?.conversationId;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(async (windows) => {
      const win = windows[0];
      if (win) {
        await win.focus();
        if (conversationId) win.postMessage({ type: "kitsulan:open-conversation", conversationId });
        return;
      }
      const url = conversationId ? `/?conversation=${encodeURIComponent(conversationId)}` : "/";
      await self.clients.openWindow(url);
    }),
  );
});

// Web Push (src/notify/push.ts): the server sends {"kind":"message","conversation":"<id>"}
// (without the conversation when several were written to), never a sender or text. The texts
// come from the app, in the person's language, through the Cache API.
const PUSH_TEXTS_CACHE = "kitsulan-push-texts";
const PUSH_TEXTS_URL = "/__kitsulan/push-texts";

async function pushTexts() {
  try {
    const saved = await caches.open(PUSH_TEXTS_CACHE).then((c) => c.match(PUSH_TEXTS_URL));
    if (saved) return await saved.json();
  } catch {
    // the defaults below
  }
  return { newMessage: "New message", newMessages: "New messages" };
}

self.addEventListener("push", (event) => {
  event.waitUntil(
    (async () => {
      let data = {};
      try {
        data = event.data ? event.data.json() : {};
      } catch {
        data = {};
      }
      // A tab of the app in view tells of the message itself.
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      if (windows.some((w) => w.visibilityState === "visible")) return;
      const texts = await pushTexts();
      const conversationId = typeof data.conversation === "string" ? data.conversation : undefined;
      await self.registration.showNotification(conversationId ? texts.newMessage : texts.newMessages, {
        tag: conversationId ? `conversation:${conversationId}` : "kitsulan:messages",
        icon: "/icon-192.png",
        data: conversationId ? { conversationId } : {},
      });
    })(),
  );
});

// The browser replaced the subscription (or dropped it): subscribe again with the same server
// key. The worker holds no session, so the app tells the server the new endpoint the next time
// it opens (push.ts, syncPush); until then the server's pushes go to the old one.
self.addEventListener("pushsubscriptionchange", (event) => {
  const key = event.oldSubscription?.options?.applicationServerKey;
  if (!key) return;
  event.waitUntil(
    self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }).catch(() => undefined),
  );
});
