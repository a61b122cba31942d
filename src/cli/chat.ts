/**
 * The demo chat's channel server for `fullduplex serve`: rooms are channels
 * named `chat:<room>` with history (for recovery and the backlog a newcomer
 * sees), presence and client publishing. The demo has no accounts: the token
 * a client connects with is its display name, checked for shape only.
 */
import type { IncomingMessage } from 'node:http';
import { ChannelServer, type ChannelServerOptions, type Identity } from '../channels/index.js';

/** Where the chat's channel endpoint lives (the fallback is under it: /channels/connect, /channels/send). */
export const CHAT_PATH = '/channels';
export const MAX_NAME_LENGTH = 32;
/** Publications kept per room, and how long a quiet room keeps them (ms). */
export const ROOM_HISTORY = { size: 200, ttl: 60 * 60_000 };

const ROOM = /^chat:[A-Za-z0-9_-]{1,64}$/;
// C0/C1 controls, and the bidi overrides that would let one name reorder the text around it.
const UNSAFE_NAME = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** The display name a token stands for, or null if it is not one. */
export function displayName(token: string | undefined): string | null {
  if (token === undefined) return null;
  const name = token.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || UNSAFE_NAME.test(name)) return null;
  return name;
}

/**
 * Browsers send `Origin`; a page may only use the chat from the origin that
 * served it (the Host it asked for), which keeps other sites from opening
 * sessions or posting commands (CSRF, PROTOCOL.md §9). Clients that send no
 * Origin (not browsers) are let through: they are not a CSRF vector.
 */
export function sameOrigin(origin: string | undefined, req: IncomingMessage): boolean {
  if (origin === undefined) return true;
  const host = req.headers.host;
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    // Both through the URL parser, so case and default ports compare equal.
    return (url.protocol === 'http:' || url.protocol === 'https:') && new URL(`${url.protocol}//${host}`).host === url.host;
  } catch {
    return false;
  }
}

export function createChatServer(extra: Partial<ChannelServerOptions> = {}): ChannelServer {
  return new ChannelServer({
    path: CHAT_PATH,
    allowedOrigins: sameOrigin,
    channels: [{ match: (channel) => ROOM.test(channel), history: ROOM_HISTORY, presence: true, publish: true }],
    authenticate(_request, token): Identity | null {
      const name = displayName(token);
      return name === null ? null : { user: name };
    },
    // Only rooms: any other channel name is refused for every action.
    authorize: (_client, _action, channel) => ROOM.test(channel),
    ...extra,
  });
}
