// Live event updates from `GET /api/v1/events/stream` (SSE).
//
// EventSource cannot send an Authorization header, so the stream is read with fetch() and a
// streaming body, which carries the same bearer token as every other call. The last `id:` seen
// is sent back as Last-Event-ID on reconnect, so a dropped connection misses nothing.

import { token, url } from "./api.js";

/** Longest wait between reconnection attempts. */
const RETRY_DELAY_MAX_MS = 30000;
/** An SSE frame longer than this is dropped rather than buffered without bound. */
const FRAME_BYTES_MAX = 1 << 20;

export class Live {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    /** Whether the stream is connected now, for a header drawn after the change. */
    this.up = false;
    this.onState = (up) => {
      this.up = up;
      onState(up);
    };
    this.lastId = null;
    this.abort = null;
    this.stopped = true;
    this.delay = 1000;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    // A loop from before a stop may still be sleeping: each start gets its own generation
    // and an older loop ends when it wakes.
    this.gen = (this.gen || 0) + 1;
    this.loop(this.gen);
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
    this.onState(false);
  }

  async loop(gen) {
    const current = () => !this.stopped && gen === this.gen;
    while (current()) {
      try {
        await this.once();
      } catch (e) {
        if (!current()) return;
      }
      if (!current()) return;
      this.onState(false);
      await new Promise((r) => setTimeout(r, this.delay));
      this.delay = Math.min(this.delay * 2, RETRY_DELAY_MAX_MS);
    }
  }

  async once() {
    this.abort = new AbortController();
    const headers = { Authorization: "Bearer " + token(), Accept: "text/event-stream" };
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    const resp = await fetch(url("events/stream"), { headers, signal: this.abort.signal });
    if (resp.status === 401 || resp.status === 403) {
      // Retrying cannot help a refused token; the next sign-in starts the stream again.
      this.stopped = true;
      this.onState(false);
      throw new Error("stream refused: " + resp.status);
    }
    if (!resp.ok || !resp.body) throw new Error("stream " + resp.status);
    this.onState(true);
    this.delay = 1000;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        this.frame(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
      if (buf.length > FRAME_BYTES_MAX) buf = "";
    }
  }

  frame(text) {
    let id = null;
    let event = "message";
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
      if (field === "id") id = val;
      else if (field === "event") event = val;
      else if (field === "data") data.push(val);
    }
    if (id !== null) this.lastId = id;
    if (!data.length) return;
    try {
      this.onEvent(event, JSON.parse(data.join("\n")));
    } catch {
      // Not JSON (a keep-alive or a message for another client): nothing to show.
    }
  }
}
