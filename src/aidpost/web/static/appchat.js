// The participant's conversation: live over the messenger's WebSocket (our ChatConnection:
// reconnects, resumes without gaps, resends), with the location sent along each message
// when shared, and every message kept on the phone so the chat reads offline.
import { ChatConnection, sessionToken } from "/web/static/chat.js";

const $ = (id) => document.getElementById(id);
const box = $("conversation");
const chatId = box.dataset.chat;
const storeKey = `aidpost:chat:${chatId}`;
let where = null;

const time = (iso) => {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
};
const item = (m, pending = false) => {
  const li = document.createElement("li");
  li.className = (m.fromOrganizer ? "theirs" : "mine") + (pending ? " pending" : "");
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = m.content;
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = pending ? "Sending…" : `${m.fromOrganizer ? "Emergency team" : "You"} · ${time(m.timeSent)}`;
  li.append(text, meta);
  return li;
};

function saved() {
  try {
    return JSON.parse(localStorage.getItem(storeKey) || "[]");
  } catch {
    return [];
  }
}

function render() {
  const list = $("messages");
  const messages = chat.messages.get(chatId) || saved();
  list.replaceChildren(...messages.map((m) => item(m)));
  for (const m of chat.pending.values()) if (m.chatId === chatId) list.append(item({ content: m.message, fromOrganizer: 0 }, true));
  list.lastElementChild?.scrollIntoView({ block: "end" });
}

function keep() {
  const messages = chat.messages.get(chatId);
  if (messages) localStorage.setItem(storeKey, JSON.stringify(messages.slice(-500)));
}

function ended() {
  $("ended").hidden = false;
  $("composer")?.remove();
  $("share")?.parentElement.remove();
}

const chat = new ChatConnection({
  url: box.dataset.wsUrl || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/messenger-api/connect`,
  authorize: () => sessionToken("app", box.dataset.csrf),
  on: {
    status(state) {
      $("conn").textContent = { connecting: "Connecting…", online: "Connected", reconnecting: "Reconnecting…", offline: "Offline: your messages are sent when the network is back", refused: "Not connected: sign in again" }[state];
      $("conn").dataset.state = state;
    },
    history(id) { if (id === chatId) { keep(); render(); } },
    message(m) { if (m.chatId === chatId) { keep(); render(); } },
    closed(id) { if (id === chatId) ended(); },
  },
});

// Offline first: what this phone saved, then the live conversation.
const stored = saved();
if (stored.length) {
  chat.messages.set(chatId, stored);
  chat.lastSeq.set(chatId, stored[stored.length - 1].seq || 0);
  chat.chats.set(chatId, { id: chatId });
}
render();

// The location goes with each message only while the box is ticked and the phone has a
// fix; the box says which (ticked at first when the help request could send a location).
let watch = null;
const share = $("share");
const shareState = (text) => { $("share-state").textContent = text; };
function follow(on) {
  if (watch !== null) navigator.geolocation.clearWatch(watch);
  watch = null;
  where = null;
  if (!on) {
    shareState("Your location is not sent.");
    return;
  }
  if (!("geolocation" in navigator)) {
    share.checked = false;
    shareState("This phone cannot share its location.");
    return;
  }
  shareState("Finding your location…");
  watch = navigator.geolocation.watchPosition(
    (pos) => {
      where = { lat: +pos.coords.latitude.toFixed(6), lng: +pos.coords.longitude.toFixed(6) };
      localStorage.setItem("aidpost:share-location", "yes");
      shareState("Your location is sent with each message.");
    },
    () => {
      where = null;
      shareState("Your location could not be found; describe where you are.");
    },
    { enableHighAccuracy: true, maximumAge: 30000 },
  );
}
if (share) {
  share.checked = localStorage.getItem("aidpost:share-location") === "yes";
  share.addEventListener("change", () => follow(share.checked));
  follow(share.checked);
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  chat.sendMessage(chatId, text, share?.checked && where ? where : {});
  $("message").value = "";
  render();
});
chat.connect();
