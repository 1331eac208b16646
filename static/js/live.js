// The one user-scoped websocket to /v1/updates (README, "Real time"). It remembers the highest update seq
// it has seen and reconnects with `since` and exponential backoff, so a dropped network or a server
// restart replays exactly what was missed. Close code 4401 (bad token) ends it for good.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
const PING_AFTER_MS = 20_000; // quiet this long: ask the server for an ack
const DEAD_AFTER_MS = 45_000; // quiet this long: the connection is gone even if the socket says not
const CLOSE_UNAUTHORIZED = 4401;

export class Live {
  // handlers: update(data), ephemeral(data), ready({refetch}), status(state, detail), unauthorized()
  constructor(token, handlers) {
    this.token = token;
    this.on = handlers;
    this.lastSeq = null; // null until the first `ready`: the app then fetches everything once
    this.attempts = 0;
    this.socket = null;
    this.retryTimer = null;
    this.watchdog = null;
    this.stopped = false;
    this.onOnline = () => {
      if (this.retryTimer !== null) {
        clearTimeout(this.retryTimer);
        this.attempts = 0;
        this.connect();
      }
    };
  }

  start() {
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.retryTimer);
    this.detach();
  }

  connect() {
    this.retryTimer = null;
    this.resync = false;
    this.on.status(this.attempts ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/v1/updates`);
    this.socket = socket;
    this.heardAt = Date.now();
    socket.onopen = () => {
      const auth = { token: this.token, clientType: "user-scoped" };
      if (this.lastSeq !== null) auth.since = this.lastSeq;
      this.send({ event: "auth", data: auth });
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closed(event.code);
    this.watchdog = setInterval(() => this.watch(), PING_AFTER_MS / 2);
  }

  send(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  receive(text) {
    this.heardAt = Date.now();
    const frame = JSON.parse(text);
    const data = frame.data;
    switch (frame.event) {
      case "update":
        // Replay and live delivery never overlap, but a seq at or below what we hold is already applied.
        if (this.lastSeq !== null && data.seq <= this.lastSeq) return;
        this.lastSeq = data.seq;
        this.on.update(data);
        break;
      case "resync":
        this.resync = true;
        break;
      case "ready": {
        const refetch = this.lastSeq === null || this.resync;
        this.lastSeq = refetch ? data.seq : Math.max(this.lastSeq, data.seq);
        this.attempts = 0;
        this.on.status("connected");
        this.on.ready({ refetch });
        break;
      }
      case "ephemeral":
        this.on.ephemeral(data);
        break;
      // "ack" (our pings) and "error" (an unauthorized auth is followed by close 4401) need nothing more
    }
  }

  watch() {
    const quiet = Date.now() - this.heardAt;
    if (quiet > DEAD_AFTER_MS) {
      this.detach();
      this.closed(1006);
    } else if (quiet > PING_AFTER_MS && this.socket.readyState === WebSocket.OPEN) {
      this.send({ event: "ping", data: {}, ack: Date.now() });
    }
  }

  detach() {
    clearInterval(this.watchdog);
    if (this.socket) {
      this.socket.onopen = this.socket.onmessage = this.socket.onclose = null;
      this.socket.close();
      this.socket = null;
    }
  }

  closed(code) {
    clearInterval(this.watchdog);
    this.socket = null;
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORIZED) {
      this.stopped = true;
      this.on.unauthorized();
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempts) * (0.75 + Math.random() / 4);
    this.attempts += 1;
    this.on.status("reconnecting", Math.ceil(delay / 1000));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
