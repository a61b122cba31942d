/**
 * In-process publish/subscribe over a server's connections: topic → the
 * connections subscribed to it. A published message is framed once and the
 * same bytes are queued on every subscriber.
 */
import { Opcode, headerSize, writeHeader } from '../protocol/frame.js';
import { isUtf8 } from '../protocol/utf8.js';
import type { SendOptions, ServerWebSocket } from './server-socket.js';

export type MessageData = string | Buffer | ArrayBuffer | ArrayBufferView;

export class Topics<T> {
  private readonly subscribers = new Map<string, Set<ServerWebSocket<T>>>();

  subscribe(ws: ServerWebSocket<T>, topic: string): void {
    if (ws.readyState === 3) return;
    let subs = this.subscribers.get(topic);
    if (subs === undefined) this.subscribers.set(topic, (subs = new Set()));
    subs.add(ws);
    (ws.topics ??= new Set()).add(topic);
  }

  unsubscribe(ws: ServerWebSocket<T>, topic: string): void {
    if (ws.topics?.delete(topic)) this.remove(topic, ws);
  }

  /** Forgets every subscription of a connection that has closed. */
  unsubscribeAll(ws: ServerWebSocket<T>): void {
    if (ws.topics === null) return;
    for (const t of ws.topics) this.remove(t, ws);
    ws.topics = null;
  }

  count(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }

  /** Queues a message on every subscriber of `topic` but `exclude`; returns how many. */
  publish(topic: string, data: MessageData, options: SendOptions | undefined, exclude: ServerWebSocket<T> | undefined): number {
    const subs = this.subscribers.get(topic);
    if (subs === undefined) return 0;
    const frame = buildFrame(data, options);
    let n = 0;
    for (const ws of subs) {
      if (ws === exclude) continue;
      ws.sendFrame(frame);
      n++;
    }
    return n;
  }

  private remove(topic: string, ws: ServerWebSocket<T>): void {
    const subs = this.subscribers.get(topic);
    if (subs === undefined) return;
    subs.delete(ws);
    if (subs.size === 0) this.subscribers.delete(topic);
  }
}

/**
 * Serialises a whole unmasked frame once, for many connections: text for a
 * string, binary for bytes, unless `options.binary` says otherwise (bytes
 * sent as text must be UTF-8, RFC 6455 §5.6).
 */
export function buildFrame(data: MessageData, options: SendOptions | undefined): Buffer {
  let payload: Uint8Array;
  let binary: boolean;
  if (typeof data === 'string') {
    payload = Buffer.from(data, 'utf8');
    binary = options?.binary ?? false;
  } else {
    payload = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    binary = options?.binary ?? true;
    if (!binary && !isUtf8(payload)) throw new TypeError('text message is not valid UTF-8');
  }
  const frame = Buffer.allocUnsafe(headerSize(payload.length, false) + payload.length);
  const p = writeHeader(frame, 0, 0x80 | (binary ? Opcode.Binary : Opcode.Text), payload.length, null);
  frame.set(payload, p);
  return frame;
}
