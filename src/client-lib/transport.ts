/**
 * The client's two transports for the same frames (PROTOCOL.md §1, §9): a
 * WebSocket with the `fullduplex.channels.v1` subprotocol, and the fallback,
 * Server-Sent Events read from a `fetch` stream (so nothing secret goes in a
 * URL) with commands POSTed, batched per tick.
 */
import { PROTOCOL, type FetchLike, type TransportName, type WebSocketConstructor, type WebSocketLike } from './types.js';

/** A parsed frame from the server. */
export type Frame = { type?: string; id?: number; [field: string]: unknown };

export interface TransportHandlers {
  frame(frame: Frame): void;
  /** The transport ended by itself (not by `close()`). */
  closed(code: number, reason: string): void;
}

export interface Transport {
  readonly name: TransportName;
  send(frame: object): void;
  /** Ends the transport; no handler is called after this. */
  close(): void;
}

function parse(text: string, h: TransportHandlers): void {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (typeof frame === 'object' && frame !== null) h.frame(frame as Frame);
}

/** Opens a WebSocket and sends `connect` as its first frame. */
export function openWebSocket(WS: WebSocketConstructor, url: string, connect: object, h: TransportHandlers): Transport {
  let done = false;
  const end = (code: number, reason: string): void => {
    if (done) return;
    done = true;
    h.closed(code, reason);
  };
  let ws: WebSocketLike | null = null;
  try {
    ws = new WS(url, PROTOCOL) as WebSocketLike;
    ws.onopen = () => {
      // A server that did not choose our subprotocol does not speak it (§1).
      if (ws?.protocol !== PROTOCOL) {
        ws?.close(1000);
        return end(4406, `the server did not negotiate the subprotocol ${PROTOCOL}`);
      }
      ws.send(JSON.stringify(connect));
    };
    ws.onmessage = (e) => typeof e.data === 'string' && parse(e.data, h);
    ws.onclose = (e) => end(e.code, e.reason);
    ws.onerror = () => {};
  } catch (err) {
    setTimeout(end, 0, 1006, String(err));
  }
  return {
    name: 'websocket',
    send: (frame) => ws?.readyState === 1 && ws.send(JSON.stringify(frame)),
    close() {
      done = true;
      try {
        ws?.close(1000);
      } catch {
        // Already closed.
      }
    },
  };
}

/**
 * The event stream format (WHATWG HTML §9.2.6): lines end in CR LF, LF or
 * CR; `data` lines accumulate (joined by LF) and a blank line dispatches
 * them; one space after the colon is dropped; comments and other fields are
 * ignored. Our server sends one `data` line per frame, but proxies may
 * re-frame the stream.
 */
class EventStreamParser {
  private rest = '';
  private data: string[] = [];
  /** The text so far ended in CR: an LF that comes next ends no line of its own. */
  private cr = false;

  constructor(private readonly dispatch: (data: string) => void) {}

  push(text: string): void {
    if (this.cr && text.startsWith('\n')) text = text.slice(1);
    this.cr = text.endsWith('\r');
    if (text === '') return;
    const lines = (this.rest + text).split(/\r\n|\r|\n/);
    this.rest = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.dispatch(this.data.join('\n'));
      this.data = [];
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) return;
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    const value = colon < 0 ? '' : line.slice(colon + 1);
    this.data.push(value.startsWith(' ') ? value.slice(1) : value);
  }
}

/** HTTP status of a refused fallback connect → the close code it means (PROTOCOL.md §6, §9). */
function codeOf(status: number): number {
  if (status === 401) return 4401;
  if (status >= 400 && status < 500 && status !== 404 && status !== 408 && status !== 429) return 4400;
  return 1006;
}

/** Opens the fallback: `POST <base>/connect` answered by the event stream; commands go to `<base>/send`. */
export function openSse(fetchFn: FetchLike, base: string, credentials: 'include' | 'same-origin' | 'omit' | undefined, connect: object, h: TransportHandlers): Transport {
  const abort = new AbortController();
  let done = false;
  let session = '';
  let queue: object[] = [];
  const end = (code: number, reason: string): void => {
    if (done) return;
    done = true;
    abort.abort();
    h.closed(code, reason);
  };
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetchFn(base + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: abort.signal,
      ...(credentials ? { credentials } : {}),
    });
  const frame = (f: Frame): void => {
    if (f.type === 'connected' && typeof f.session === 'string') session = f.session;
    h.frame(f);
  };
  (async () => {
    const res = await post('/connect', connect);
    if (!res.ok || res.body === null) {
      // The body of a refusal is the error frame: its message is the reason.
      let reason = `fallback refused: HTTP ${res.status}`;
      parse(await res.text(), { frame: (f) => typeof f.message === 'string' && (reason = f.message), closed: end });
      return end(codeOf(res.status), reason);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const events = new EventStreamParser((data) => parse(data, { frame, closed: end }));
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished || done) break;
      events.push(decoder.decode(value, { stream: true }));
    }
    end(1006, 'stream ended');
  })().catch((err: unknown) => end(1006, String(err)));

  // One POST at a time, so commands reach the server (and, behind a load
  // balancer, the session's node) in the order they were sent.
  let busy = false;
  const flush = (): void => {
    if (busy || done || queue.length === 0) return;
    const batch = queue.splice(0, 16);
    busy = true;
    post('/send', batch.length === 1 ? batch[0] : batch, { 'X-Fullduplex-Session': session }).then(
      (res) => {
        busy = false;
        if (res.status >= 300) end(res.status === 404 ? 4504 : 1006, `send refused: HTTP ${res.status}`);
        else flush();
      },
      (err: unknown) => end(1006, String(err)),
    );
  };
  return {
    name: 'sse',
    send(f) {
      if (queue.push(f) === 1) queueMicrotask(flush);
    },
    close() {
      done = true;
      abort.abort();
    },
  };
}
