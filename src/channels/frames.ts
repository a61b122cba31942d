/**
 * The server's frames (PROTOCOL.md §2, §3) as JSON text. Publications are
 * spliced from stored payload text so a publication is serialised once, at
 * publish time, however many subscribers and recoveries read it.
 */
import type { StoredPublication, StreamPosition, UnrecoverableReason } from './store.js';

const PING = '{"type":"ping"}';

export function pingFrame(): string {
  return PING;
}

export function errorFrame(id: number | null, code: number, message: string): string {
  return JSON.stringify(id === null ? { type: 'error', code, message } : { id, type: 'error', code, message });
}

export function disconnectFrame(code: number, reason: string, reconnect: boolean): string {
  return JSON.stringify({ type: 'disconnect', code, reason, reconnect });
}

/** The application ended a subscription (PROTOCOL.md §3). */
export function unsubscribedFrame(channel: string, code: number, reason: string): string {
  return JSON.stringify({ type: 'unsubscribed', channel, code, reason });
}

export function connectedFrame(id: number, client: string, user: string, ping: number, session?: string): string {
  return JSON.stringify(session === undefined ? { id, type: 'connected', client, user, ping } : { id, type: 'connected', client, user, ping, session });
}

/** The stored payload of a publication: its data/b64 object with `info` added (publisher info; null for the server). */
export function storedPayload(payload: string, info: string | null): string {
  return info === null ? payload : `${payload.slice(0, -1)},"info":${info}}`;
}

/** A `pub` push: `{"type":"pub","channel":…,"offset":…,"epoch":…,<payload fields>}`. */
export function pubFrame(channel: string, offset: number, epoch: string, payload: string): string {
  return `{"type":"pub","channel":${JSON.stringify(channel)},"offset":${offset},"epoch":${JSON.stringify(epoch)},${payload.slice(1)}`;
}

/** A publication inside a `subscribed` or `history` reply: `{"offset":…,<payload fields>}`. */
function listed(p: StoredPublication): string {
  return `{"offset":${p.offset},${p.payload.slice(1)}`;
}

export function publicationList(publications: readonly StoredPublication[]): string {
  let s = '[';
  for (let i = 0; i < publications.length; i++) {
    const p = publications[i];
    if (p === undefined) continue;
    if (i > 0) s += ',';
    s += listed(p);
  }
  return s + ']';
}

export interface Recovery {
  recovered: boolean;
  reason?: UnrecoverableReason;
  publications: readonly StoredPublication[];
}

export function subscribedFrame(id: number, channel: string, position: StreamPosition, recovery: Recovery | null): string {
  const head = `{"id":${id},"type":"subscribed","channel":${JSON.stringify(channel)},"offset":${position.offset},"epoch":${JSON.stringify(position.epoch)}`;
  if (recovery === null) return head + '}';
  if (!recovery.recovered) return `${head},"recovered":false,"reason":"${recovery.reason ?? 'epoch'}"}`;
  return `${head},"recovered":true,"publications":${publicationList(recovery.publications)}}`;
}

export function historyFrame(id: number, channel: string, top: StreamPosition, publications: readonly StoredPublication[]): string {
  return `{"id":${id},"type":"history","channel":${JSON.stringify(channel)},"offset":${top.offset},"epoch":${JSON.stringify(top.epoch)},"publications":${publicationList(publications)}}`;
}

/** `presence` reply; `entries` are stored JSON texts of {client, user, info?}. */
export function presenceFrame(id: number, channel: string, entries: Iterable<string>): string {
  return `{"id":${id},"type":"presence","channel":${JSON.stringify(channel)},"clients":[${[...entries].join(',')}]}`;
}

/** A `join`/`leave` push from a stored presence entry `{"client":…,"user":…,…}`. */
export function presenceEventFrame(type: 'join' | 'leave', channel: string, entry: string): string {
  return `{"type":"${type}","channel":${JSON.stringify(channel)},${entry.slice(1)}`;
}

export function reply(id: number, type: string, fields?: Record<string, unknown>): string {
  return JSON.stringify({ id, type, ...fields });
}
