// Switchboard's service worker: shows what the server pushes ({title, body, url, sessionId}) and, on a
// click, focuses an open Switchboard tab (sending it to the session) or opens one. It caches nothing.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  event.waitUntil(self.registration.showNotification(data.title || "Switchboard", {
    body: data.body || "",
    icon: "/static/icon-192.png",  // Android shows no SVG in a notification
    tag: data.sessionId || "switchboard",  // one notification per session: a newer one replaces it
    renotify: true,
    data: {url: data.url || "/", sessionId: data.sessionId || null},
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const {url, sessionId} = event.notification.data || {};
  const target = new URL(url || "/", self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({type: "window", includeUncontrolled: true});
    const open = windows.find((client) => new URL(client.url).origin === self.location.origin);
    if (open) {
      open.postMessage({type: "open-session", sessionId});
      return open.focus();
    }
    return self.clients.openWindow(target);
  })());
});
