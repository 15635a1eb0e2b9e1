// The participant app's small helpers: install the service worker, say when offline, add
// the location to a help request, follow the queue, forget everything at sign-out.
const $ = (id) => document.getElementById(id);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
}

const net = $("net");
const showNet = () => { if (net) net.hidden = navigator.onLine; };
window.addEventListener("online", showNet);
window.addEventListener("offline", showNet);
showNet();

// Ask for help: the device's location, when the person allows it.
const helpForm = $("help-form");
if (helpForm && "geolocation" in navigator) {
  const status = $("where-status");
  navigator.geolocation.getCurrentPosition(
    (pos) => {
      $("lat").value = pos.coords.latitude.toFixed(6);
      $("lng").value = pos.coords.longitude.toFixed(6);
      status.textContent = `Your location will be sent (${pos.coords.latitude.toFixed(5)}, ${pos.coords.longitude.toFixed(5)}).`;
      localStorage.setItem("aidpost:share-location", "yes");
    },
    () => { status.textContent = "Your location is not shared; describe where you are."; },
    { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 },
  );
}

// Waiting: the place in the queue and the wait, until someone takes the request.
const waiting = $("waiting");
if (waiting && $("position")) {
  const id = waiting.dataset.request;
  const poll = async () => {
    try {
      const r = await fetch(`/app/requests/${id}/status`, { credentials: "same-origin", redirect: "manual" });
      if (r.ok) {
        const s = await r.json();
        if (s.status === "claimed" && s.chatId) {
          location.assign(`/app/chats/${s.chatId}`);
          return;
        }
        if (s.status !== "waiting") {
          location.reload();
          return;
        }
        $("position").textContent = s.position ?? "–";
        $("estimate").textContent = s.estimatedWaitSeconds == null
          ? "The team will be with you as soon as they can."
          : `About ${Math.max(1, Math.ceil(s.estimatedWaitSeconds / 60))} min`;
      }
    } catch {
      // offline: try again later
    }
    setTimeout(poll, 3000);
  };
  setTimeout(poll, 3000);
}

// Signing out (or being signed out: the session ended, the account was deleted, the
// password changed): nothing of this person stays on the phone.
const forget = () => {
  for (const key of Object.keys(localStorage)) if (key.startsWith("aidpost:")) localStorage.removeItem(key);
  navigator.serviceWorker?.controller?.postMessage({ type: "forget" });
};
$("sign-out")?.addEventListener("submit", forget);
if (location.pathname === "/app/sign-in" || location.pathname === "/app/sign-up") forget();
