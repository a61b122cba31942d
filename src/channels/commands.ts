/**
 * Parsing and validating client commands (PROTOCOL.md §2): untrusted JSON in,
 * a typed `Command` or a `CommandError` (code, message and the command's id
 * when it could be read) out. Pure: no I/O, never throws.
 */
import { ErrorCode } from '../client-lib/codes.js';
import type { StreamPosition } from './store.js';

export type Command =
  | { type: 'connect'; id: number; token: string | undefined; name: string | undefined }
  | { type: 'subscribe'; id: number; channel: string; recover: StreamPosition | null }
  | { type: 'unsubscribe'; id: number; channel: string }
  /** `payload`: the JSON text `{"data":…}` or `{"b64":"…"}`, re-serialised (the client's formatting is not kept). */
  | { type: 'publish'; id: number; channel: string; payload: string }
  | { type: 'history'; id: number; channel: string; limit: number | null; since: StreamPosition | null }
  | { type: 'presence'; id: number; channel: string }
  | { type: 'ping'; id: number }
  /** The answer to a heartbeat ping (no id). */
  | { type: 'pong' };

export interface CommandError {
  /** The command's id, or null when it could not be read. */
  id: number | null;
  code: number;
  message: string;
}

export const MAX_CHANNEL_LENGTH = 255;
const MAX_NAME_LENGTH = 128;

/** A channel name is 1..255 UTF-16 units without control characters (PROTOCOL.md §4). */
export function validChannel(name: unknown): name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_CHANNEL_LENGTH) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

// Standard base64 (RFC 4648 §4), padded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parses one command frame's text. */
export function parseFrame(text: string): Command | CommandError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(null, ErrorCode.BadRequest, 'not JSON');
  }
  return parseCommand(value);
}

/** Validates one parsed command object. */
export function parseCommand(value: unknown): Command | CommandError {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(null, ErrorCode.BadRequest, 'a command is a JSON object');
  const o = value as Record<string, unknown>;
  const type = o.type;
  if (type === 'pong') return { type: 'pong' };
  const id = o.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) return fail(null, ErrorCode.BadRequest, 'id must be a positive integer');
  if (typeof type !== 'string') return fail(id, ErrorCode.BadRequest, 'type must be a string');
  switch (type) {
    case 'connect': {
      const token = o.token;
      const name = o.name;
      // The token is bounded by the frame size only (PROTOCOL.md §8).
      if (token !== undefined && typeof token !== 'string') return fail(id, ErrorCode.BadRequest, 'token must be a string');
      if (name !== undefined && (typeof name !== 'string' || name.length > MAX_NAME_LENGTH)) return fail(id, ErrorCode.BadRequest, `name must be a string of at most ${MAX_NAME_LENGTH} characters`);
      return { type, id, token, name };
    }
    case 'ping':
      return { type, id };
  }
  if (type !== 'subscribe' && type !== 'unsubscribe' && type !== 'publish' && type !== 'history' && type !== 'presence') {
    return fail(id, ErrorCode.UnknownCommand, `unknown command type "${type.slice(0, 32)}"`);
  }
  const channel = o.channel;
  if (!validChannel(channel)) return fail(id, ErrorCode.BadRequest, 'channel must be 1 to 255 characters without control characters');
  switch (type) {
    case 'subscribe': {
      const recover = o.recover === undefined ? null : position(o.recover);
      if (recover === undefined) return fail(id, ErrorCode.BadRequest, 'recover must be {offset, epoch}');
      return { type, id, channel, recover };
    }
    case 'unsubscribe':
    case 'presence':
      return { type, id, channel };
    case 'publish': {
      const payload = publicationPayload(o);
      if (typeof payload !== 'string') return fail(id, ErrorCode.BadRequest, payload.error);
      return { type, id, channel, payload };
    }
    case 'history': {
      const limit = o.limit;
      if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)) {
        return fail(id, ErrorCode.BadRequest, 'limit must be a non-negative integer');
      }
      const since = o.since === undefined ? null : position(o.since);
      if (since === undefined) return fail(id, ErrorCode.BadRequest, 'since must be {offset, epoch}');
      return { type, id, channel, limit: limit ?? null, since };
    }
  }
}

/** `{offset, epoch}` with a non-negative integer offset and a short epoch string; undefined if malformed. */
function position(value: unknown): StreamPosition | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { offset, epoch } = value as Record<string, unknown>;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  if (typeof epoch !== 'string' || epoch.length > 64) return undefined;
  return { offset, epoch };
}

/** The publication's own fields as JSON text: exactly one of `data` and `b64` (PROTOCOL.md §1). */
function publicationPayload(o: Record<string, unknown>): string | { error: string } {
  const hasData = 'data' in o;
  const b64 = o.b64;
  if (hasData === (b64 !== undefined)) return { error: 'a publish carries exactly one of data and b64' };
  if (b64 !== undefined) {
    if (typeof b64 !== 'string' || !BASE64.test(b64)) return { error: 'b64 must be standard padded base64' };
    return `{"b64":"${b64}"}`;
  }
  const data = jsonText(o.data ?? null);
  if (data === null) return { error: 'data is nested too deeply' };
  return `{"data":${data}}`;
}

/**
 * JSON text of a value parsed from a client, or null when it is nested too
 * deeply to serialise (JSON.parse takes depths that JSON.stringify's
 * recursion cannot: a RangeError, which must not escape as a crash).
 */
export function jsonText(value: unknown): string | null {
  try {
    return JSON.stringify(value) ?? null;
  } catch (err) {
    if (err instanceof RangeError) return null;
    throw err;
  }
}

function fail(id: number | null, code: number, message: string): CommandError {
  return { id, code, message };
}

export function isCommandError(value: Command | CommandError): value is CommandError {
  return 'code' in value;
}
