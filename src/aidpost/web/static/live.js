// The console's live support: the chat list with the accept-new-chats switch and the
// agency's waiting count, the conversation, and the participant's details with a map of
// their latest location and the event's contacts. Everything shown is set as text.
import "/web/static/map.js";
import { ChatConnection, sessionToken } from "/web/static/chat.js";

const root = document.getElementById("live");
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};
const time = (iso) => {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
};

const baseTitle = document.title;
const unread = new Map();
const events = new Map();
let openChat = null;
let accepting = null; // the timer that asks for the next request while the switch is on
let audio = null;

const wsUrl =
  root.dataset.wsUrl ||
  `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/messenger-api/connect`;

const chat = new ChatConnection({
  url: wsUrl,
  authorize: () => sessionToken("console", root.dataset.csrf),
  on: {
    status(state) {
      const text = { connecting: "Connecting…", online: "Connected", reconnecting: "Reconnecting…", offline: "Offline: reconnecting when the network is back", refused: "Not connected: sign in again" }[state];
      $("conn").textContent = text;
      $("conn").dataset.state = state;
    },
    chat(c, isNew) {
      renderList();
      if (isNew) {
        beep();
        if (accepting) setAccept(false); // ESME's switch: one new chat, then off
        if (!openChat || !chat.chats.has(openChat)) select(c.id);
      }
    },
    history(chatId) {
      if (chatId === openChat) renderMessages();
    },
    message(m) {
      const mine = m.fromOrganizer === 1;
      if (!mine && (m.chatId !== openChat || document.hidden)) {
        unread.set(m.chatId, (unread.get(m.chatId) || 0) + 1);
        beep();
      }
      if (m.chatId === openChat) {
        renderMessages();
        renderLocation();
      }
      renderList();
      badge();
    },
    closed(chatId) {
      unread.delete(chatId);
      renderList();
      badge();
      if (chatId === openChat) {
        $("composer").hidden = true;
        $("ended").hidden = false;
        $("close-chat").hidden = true;
      }
    },
    queue(q) {
      $("waiting").textContent = String(q.waiting);
    },
    error(e) {
      $("conn").textContent = `The server said: ${e.message}`;
    },
  },
});

function participantOf(c) {
  return c.participant || { id: c.participantId };
}

function renderList() {
  const list = $("chats");
  list.replaceChildren();
  const active = [...chat.chats.values()].sort((a, b) => (a.timeStart < b.timeStart ? 1 : -1));
  $("no-chats").hidden = active.length > 0;
  for (const c of active) {
    const n = unread.get(c.id) || 0;
    const p = participantOf(c);
    const button = el("button", { type: "button", class: "chat-item" }, el("span", { class: "who", text: p.email || `Participant #${p.id}` }));
    if (n) button.append(el("span", { class: "badge", text: String(n), "aria-label": `${n} unread` }));
    if (c.id === openChat) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => select(c.id));
    list.append(el("li", {}, button));
  }
}

function renderMessages() {
  const list = $("messages");
  list.replaceChildren();
  const pendingIds = new Set(chat.pending.keys());
  for (const m of chat.messages.get(openChat) || []) {
    list.append(
      el("li", { class: m.fromOrganizer ? "mine" : "theirs" }, el("p", { class: "text", text: m.content }),
        el("p", { class: "meta", text: `${m.fromOrganizer ? "You or a colleague" : "Participant"} · ${time(m.timeSent)}` })),
    );
  }
  for (const [clientId, m] of chat.pending) {
    if (m.chatId === openChat && pendingIds.has(clientId)) {
      list.append(el("li", { class: "mine pending" }, el("p", { class: "text", text: m.message }), el("p", { class: "meta", text: "Sending…" })));
    }
  }
  list.lastElementChild?.scrollIntoView({ block: "end" });
}

function latestLocation(c) {
  const messages = chat.messages.get(c.id) || [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (!m.fromOrganizer && typeof m.lat === "number" && typeof m.lng === "number") return { lat: m.lat, lng: m.lng, at: m.timeSent };
  }
  if (typeof c.latStart === "number" && typeof c.lngStart === "number") return { lat: c.latStart, lng: c.lngStart, at: c.timeStart };
  return null;
}

function renderLocation() {
  const c = chat.chats.get(openChat);
  if (!c) return;
  const where = latestLocation(c);
  const coords = $("coords");
  coords.replaceChildren();
  if (!where) {
    coords.textContent = "No location shared.";
    return;
  }
  const lat = where.lat.toFixed(5), lng = where.lng.toFixed(5);
  const link = el("a", { href: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=17/${lat}/${lng}`, target: "_blank", rel: "noopener noreferrer", text: "open the map" });
  coords.append(`${lat}, ${lng} (${time(where.at)}) · `, link);
  $("where").mapView?.set(where.lat, where.lng);
}

async function renderEvent(eventId) {
  const box = $("event");
  if (!events.has(eventId)) {
    events.set(eventId, fetch(`/console/live/events/${eventId}`, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).catch(() => null));
  }
  const found = await events.get(eventId);
  if (chat.chats.get(openChat)?.eventId !== eventId) return;
  box.replaceChildren();
  if (!found) {
    events.delete(eventId);
    box.append(el("p", { class: "hint", text: `Event #${eventId}` }));
    return;
  }
  const { event, contacts } = found;
  box.append(el("p", { class: "event-name", text: event.name }), el("p", { class: "hint", text: `${event.address} · ${time(event.timeStart)} – ${time(event.timeEnd)}` }));
  const list = el("ul", { class: "contacts" });
  for (const k of contacts) {
    const tel = el("a", { href: `tel:${k.phoneNumber}`, text: k.phoneNumber });
    list.append(el("li", {}, el("strong", { text: `${k.firstName} ${k.lastName}` }), " · ", tel, k.additionalNotes ? el("span", { class: "hint", text: ` · ${k.additionalNotes}` }) : ""));
  }
  if (contacts.length) box.append(el("h3", { text: "Emergency contacts" }), list);
}

function select(chatId) {
  const c = chat.chats.get(chatId);
  if (!c) return;
  openChat = chatId;
  unread.delete(chatId);
  const p = participantOf(c);
  $("conv-title").textContent = `Chat with ${p.email || `participant #${p.id}`}`;
  $("composer").hidden = false;
  $("ended").hidden = true;
  $("close-chat").hidden = false;
  $("details").hidden = false;
  const facts = $("participant");
  facts.replaceChildren(el("dt", { text: "ID" }), el("dd", { text: String(p.id) }), el("dt", { text: "Email" }), el("dd", { text: p.email || "—" }), el("dt", { text: "Phone" }));
  const phone = el("dd");
  if (p.phoneNumber) phone.append(el("a", { href: `tel:${p.phoneNumber}`, text: p.phoneNumber }));
  else phone.textContent = "—";
  facts.append(phone);
  $("new-issue").href = `/console/issues/new?eventId=${encodeURIComponent(c.eventId)}&chatId=${encodeURIComponent(c.id)}`;
  renderList();
  renderMessages();
  renderLocation();
  renderEvent(c.eventId);
  badge();
  $("message").focus();
}

function badge() {
  const total = [...unread.values()].reduce((a, b) => a + b, 0);
  document.title = total ? `(${total}) ${baseTitle}` : baseTitle;
}

function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.25);
  } catch {
    // no sound before the first click, or no audio at all: the title badge still shows
  }
}

function setAccept(on) {
  $("accept").checked = on;
  clearInterval(accepting);
  accepting = null;
  if (on) {
    chat.startChat();
    accepting = setInterval(() => chat.startChat(), 5000); // as ESME's switch does
  }
}

$("accept").addEventListener("change", (e) => {
  audio = audio || new AudioContext(); // a click: sound is allowed from now on
  setAccept(e.target.checked);
});
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("message").value.trim();
  if (!text || !openChat) return;
  chat.sendMessage(openChat, text);
  $("message").value = "";
  renderMessages();
});
$("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
$("close-chat").addEventListener("click", () => {
  if (openChat && confirm("Close this chat? The participant can then ask for help again.")) chat.closeChat(openChat);
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && openChat) {
    unread.delete(openChat);
    renderList();
    badge();
  }
});

chat.connect();
