// The connection to the server's /events stream: one EventSource per filter.
//
// EventSource reconnects by itself after a network error (and resumes with
// Last-Event-ID). It gives up only on an HTTP error; then we retry with capped,
// jittered backoff so a restarted server is picked up again.

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

export class VehicleStream {
  // handlers: onSnapshot(states), onUpdate(states), onRemove(ids), onStatus("open"|"down"|"idle")
  constructor(handlers) {
    this.handlers = handlers;
    this.status = "idle";
    this.frames = 0;
    this.badFrames = 0;
    this._source = null;
    this._url = null;
    this._retryTimer = null;
    this._failures = 0;
  }

  // Connect with these query parameters; null means "show nothing", so stay disconnected.
  connect(params) {
    const query = params === null ? null : params.toString();
    const url = query === null ? null : query ? `/events?${query}` : "/events";
    if (url !== null && url === this._url && this._source !== null) return;
    this.close();
    this._url = url;
    if (url === null) {
      this._setStatus("idle");
      return;
    }
    this._open();
  }

  close() {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    if (this._source !== null) this._source.close();
    this._source = null;
  }

  _open() {
    const source = new EventSource(this._url);
    this._source = source;
    this._listen(source, "snapshot", this.handlers.onSnapshot);
    this._listen(source, "update", this.handlers.onUpdate);
    this._listen(source, "remove", this.handlers.onRemove);
    source.addEventListener("open", () => {
      this._failures = 0;
      this._setStatus("open");
    });
    source.addEventListener("error", () => {
      if (source !== this._source) return;
      this._setStatus("down");
      if (source.readyState === EventSource.CLOSED) this._retryLater();
    });
  }

  _listen(source, name, handler) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        this.badFrames += 1;
        console.error("hsl_live: unreadable %s frame (id %s): %s", name, event.lastEventId, error);
        return;
      }
      this.frames += 1;
      handler(data);
    });
  }

  _retryLater() {
    this._source.close();
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this._failures);
    this._failures += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus(status);
  }
}
