/**
 * The client's options: what a browser decides for its page, and the limits,
 * with their defaults and checks.
 */
import type { Blob } from 'node:buffer';
import type http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';
import type { ConnectionOptions as TlsConnectionOptions, SecureContextOptions } from 'node:tls';
import { DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PAYLOAD, positiveOption } from '../options.js';
import { type PerMessageDeflateOptions, resolveDeflateOptions } from '../protocol/deflate-params.js';

/** How binary messages are handed to `message` listeners: a Blob, an ArrayBuffer, or (Node only) a Buffer. */
export type BinaryType = 'blob' | 'arraybuffer' | 'nodebuffer';

/** The `data` of a `message` event: a string for text, else per `binaryType`. */
export type MessageData = string | Blob | ArrayBuffer | Buffer;

/** TLS options for `wss:` URLs, passed to `https.request`. */
export type WebSocketTlsOptions = SecureContextOptions &
  Pick<TlsConnectionOptions, 'rejectUnauthorized' | 'servername' | 'checkServerIdentity' | 'session' | 'minDHSize'>;

/** Node options: everything a browser decides for its page, and the limits. */
export interface WebSocketOptions {
  /** Extra headers for the opening handshake request. The WebSocket headers themselves cannot be replaced. */
  headers?: OutgoingHttpHeaders;
  /** The `Origin` header to send (a browser sends its page's origin; by default none is sent). */
  origin?: string;
  /** TLS options for `wss:` (ca, cert, key, rejectUnauthorized, servername, ...). */
  tls?: WebSocketTlsOptions;
  /** Milliseconds to wait for the server's handshake response before failing. Default 30 000; Infinity waits forever. */
  handshakeTimeout?: number;
  /** Largest message accepted, in bytes; a larger one closes the connection with 1009. Default 64 MiB. */
  maxPayload?: number;
  /**
   * Milliseconds to wait, after sending a close frame, for the server's close
   * frame and its TCP close (RFC 6455 §7.1.1: the server closes first) before
   * destroying the socket. Default 5 000.
   */
  closeTimeout?: number;
  /** The agent for the handshake request (a proxy agent, say). Default: a fresh, unpooled connection. */
  agent?: http.Agent;
  /**
   * Offer permessage-deflate (RFC 7692), as the WHATWG algorithm has every
   * user agent do (default true; false offers nothing). An object sets the
   * threshold below which messages go uncompressed (1024 bytes), zlib's
   * level and memLevel, and the context-takeover and window parameters to
   * ask for. Inflated messages are bounded by `maxPayload` too.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;


export interface ResolvedOptions {
  headers: OutgoingHttpHeaders | undefined;
  origin: string | undefined;
  tls: WebSocketTlsOptions | undefined;
  handshakeTimeout: number;
  maxPayload: number;
  closeTimeout: number;
  agent: http.Agent | undefined;
  perMessageDeflate: PerMessageDeflateOptions | null;
}

export function resolveOptions(options: WebSocketOptions | undefined): ResolvedOptions {
  const o = options ?? {};
  return {
    headers: o.headers,
    origin: o.origin,
    tls: o.tls,
    handshakeTimeout: positiveOption('handshakeTimeout', o.handshakeTimeout, DEFAULT_HANDSHAKE_TIMEOUT),
    maxPayload: positiveOption('maxPayload', o.maxPayload, DEFAULT_MAX_PAYLOAD),
    closeTimeout: positiveOption('closeTimeout', o.closeTimeout, DEFAULT_CLOSE_TIMEOUT),
    agent: o.agent,
    perMessageDeflate: resolveDeflateOptions(o.perMessageDeflate ?? true),
  };
}
