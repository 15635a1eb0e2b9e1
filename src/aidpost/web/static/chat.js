// aidpost's chat connection: ESME's messenger protocol plus aidpost's extensions (hello,
// resume, queue frames, client message ids). One instance per page. It reconnects by
// itself, resumes every chat from the last sequence number it saw (so nothing is missed or
// shown twice, from any gateway) and resends what the server has not acknowledged yet.

const PROTOCOL = "aidpost.1";

const randomId = () => {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // works outside secure contexts too, unlike randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
};

// The page's session token for the WebSocket's first frame, from its UI's token endpoint
// (same-origin POST with the page's CSRF token); null, and off to sign in, when signed out.
export async function sessionToken(ui, csrf) {
  const r = await fetch(`/${ui}/live/token`, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf },
    credentials: "same-origin",
    redirect: "manual",
  });
  if (r.type === "opaqueredirect" || r.status === 401 || r.status === 403) {
    location.assign(`/${ui}/sign-in`);
    return null;
  }
  if (!r.ok) throw new Error(`token: ${r.status}`);
  return (await r.json()).authorization;
}

export class ChatConnection {
  // authorize(): a promise of "Bearer <realm>:<jwt>"; url: the WebSocket address;
  // on: {event: handler} for "status", "chat", "closed", "message", "history", "queue",
  // "queue_position", "info", "error", "frame".
  constructor({ url, authorize, on = {} }) {
    this.url = url;
    this.authorize = authorize;
    this.on = on;
    this.ws = null;
    this.ready = false;
    this.retries = 0;
    this.stopped = false;
    this.chats = new Map(); // id -> chat
    this.messages = new Map(); // chat id -> messages, in seq order
    this.lastSeq = new Map(); // chat id -> last seq seen
    this.pending = new Map(); // client id -> {chatId, message, lat, lng}
    this.connecting = false;
    window.addEventListener("online", () => this.reconnectNow());
    // The browser knows the network is gone before the socket does: drop the socket now
    // (its close may take a minute to come) and start over when the network is back; what
    // was not acknowledged is sent again then.
    window.addEventListener("offline", () => this.drop(this.ws, "offline"));
  }

  // One socket at a time: a dropped one is forgotten at once, and whatever it still
  // delivers is ignored.
  drop(ws, status) {
    if (!ws || this.ws !== ws) return;
    this.ws = null;
    this.ready = false;
    try {
      ws.close();
    } catch {
      // closing a socket that never opened
    }
    this.emit("status", status);
    this.later();
  }

  emit(name, ...args) {
    this.on[name]?.(...args);
  }

  async connect() {
    if (this.connecting || this.ws || this.stopped) return;
    this.connecting = true;
    this.emit("status", "connecting");
    let authorization;
    try {
      authorization = await this.authorize();
    } catch (err) {
      this.connecting = false;
      this.emit("status", "offline");
      this.later();
      return;
    }
    this.connecting = false;
    if (authorization === null) return; // signed out: the page moves on
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      ws.send(JSON.stringify({ Authorization: authorization }));
      ws.send(JSON.stringify({ type: "hello", payload: { protocol: PROTOCOL } }));
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handle(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      if (event.code === 1008) {
        // Refused (the session is over, or not allowed to chat): asking again won't help.
        this.ws = null;
        this.ready = false;
        this.stopped = true;
        this.emit("status", "refused");
        return;
      }
      this.drop(ws, navigator.onLine === false ? "offline" : "reconnecting");
    });
  }

  later() {
    if (this.stopped || this.timer) return;
    // ESME's clients retry every 5 s; these back off to that, at random within the step so
    // that the clients of a restarted gateway do not all come back at once.
    const step = Math.min(5000, 300 * 2 ** this.retries++);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, step / 2 + Math.random() * (step / 2));
  }

  reconnectNow() {
    if (this.ws || this.connecting || this.stopped) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  send(type, payload) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type, payload }));
    return true;
  }

  handle(frame) {
    const { type, payload } = frame;
    this.emit("frame", frame);
    // Until the server answers hello it serves this socket as it serves ESME's clients:
    // live frames may arrive first. The resume and get_chats that follow the hello cover
    // them in order; taken now, they would move lastSeq past what is still missing.
    if (!this.ready && type !== "hello" && type !== "error") return;
    switch (type) {
      case "hello": {
        this.ready = true;
        this.emit("status", "online");
        const known = {};
        for (const [id, seq] of this.lastSeq) if (this.chats.has(id)) known[id] = seq;
        if (Object.keys(known).length) this.send("resume", { chats: known });
        this.send("get_chats", "");
        for (const [clientId, m] of this.pending) this.sendMessage(m.chatId, m.message, m, clientId);
        break;
      }
      case "chats":
        this.retries = 0; // a connection that got this far is a good one
        for (const chat of payload.chats || []) {
          const fresh = !this.chats.has(chat.id);
          this.chats.set(chat.id, { ...this.chats.get(chat.id), ...chat });
          if (fresh) this.emit("chat", this.chats.get(chat.id), false);
          // Not loaded yet (new, or its history never came): live messages of a chat this
          // socket has not loaded are not sent to it.
          if (!this.lastSeq.has(chat.id)) this.send("get_chat_history", { chatId: chat.id });
        }
        break;
      case "chat_history": {
        const list = (payload.messages || []).slice().sort((a, b) => a.seq - b.seq);
        this.messages.set(payload.chatId, list);
        this.lastSeq.set(payload.chatId, list.length ? list[list.length - 1].seq : 0);
        for (const m of list) this.pending.delete(m.clientId);
        this.emit("history", payload.chatId, list);
        break;
      }
      case "new_chat":
        this.chats.set(payload.id, payload);
        if (!this.messages.has(payload.id)) this.messages.set(payload.id, []);
        if (!this.lastSeq.has(payload.id)) this.lastSeq.set(payload.id, 0);
        this.emit("chat", payload, true);
        break;
      case "user_message": {
        const chatId = payload.chatId;
        const last = this.lastSeq.get(chatId) ?? 0;
        if (payload.seq !== undefined && payload.seq <= last) break; // had it already
        if (payload.seq !== undefined) this.lastSeq.set(chatId, payload.seq);
        if (!this.messages.has(chatId)) this.messages.set(chatId, []);
        this.messages.get(chatId).push(payload);
        if (payload.clientId) this.pending.delete(payload.clientId);
        this.emit("message", payload);
        break;
      }
      case "closed_chat": {
        const chat = this.chats.get(payload.chatId);
        if (chat) chat.ended = 1;
        this.chats.delete(payload.chatId);
        for (const [clientId, m] of this.pending) if (m.chatId === payload.chatId) this.pending.delete(clientId);
        this.emit("closed", payload.chatId, chat);
        break;
      }
      case "error":
        // The server was too busy to take a message, or could not reach its bus: it is
        // still pending; send it again when the server says (a resend of a message it did
        // store is stored once).
        const again = payload && (payload.code === "busy" || payload.code === "unavailable");
        if (again && this.pending.has(payload.clientId)) {
          const clientId = payload.clientId;
          setTimeout(() => {
            const m = this.pending.get(clientId);
            if (m && this.ready) this.sendMessage(m.chatId, m.message, m, clientId);
          }, Math.min(Math.max(Number(payload.retryMs) || 1000, 100), 30000));
        }
        this.emit(type, payload);
        break;
      case "queue":
      case "queue_position":
      case "info":
        this.emit(type, payload);
        break;
      default:
        break;
    }
  }

  // Sent now if connected, else at the next connection; shown as pending until the
  // server's user_message with the same client id comes back.
  sendMessage(chatId, message, where = {}, clientId = randomId()) {
    const entry = { chatId, message, lat: where.lat, lng: where.lng };
    this.pending.set(clientId, entry);
    const payload = { chatId, message, clientId };
    if (typeof entry.lat === "number" && typeof entry.lng === "number") {
      payload.lat = entry.lat;
      payload.lng = entry.lng;
    }
    if (this.ready) this.send("send_message", payload);
    return clientId;
  }

  closeChat(chatId) {
    return this.send("close_chat", { chatId });
  }

  startChat() {
    return this.send("start_chat", "");
  }
}
