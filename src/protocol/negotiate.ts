/**
 * Negotiation of what a connection speaks (RFC 6455 §4.1, §4.2.2, §9.1;
 * RFC 7692 §7.1), for both roles, as pure functions: the subprotocol, the
 * extensions and the permessage-deflate parameters; and the headers of the
 * client's opening handshake request. The I/O layers only move the results.
 */
import { PerMessageDeflate, SYNC_DEFLATE } from './deflate.js';
import {
  PERMESSAGE_DEFLATE,
  type PerMessageDeflateOptions,
  acceptDeflateOffer,
  checkDeflateResponse,
  deflateOffer,
  deflateParamsOf,
} from './deflate-params.js';
import { type ExtensionNegotiator, type ExtensionOffer, formatExtensions, negotiateExtensions, parseExtensions } from './extensions.js';
import { type AcceptedResponse, type ResponseInfo, checkUpgradeResponse } from './handshake.js';

/** What a handshake settled: the subprotocol ("" for none), the extensions header value ("" for none), the codec. */
export interface Negotiated {
  protocol: string;
  extensions: string;
  deflate: PerMessageDeflate | null;
}

/**
 * RFC 6455 §4.2.2 /subprotocol/: the client's first offered subprotocol that
 * the server speaks, or undefined (then the response names none).
 */
export function chooseSubprotocol(offered: readonly string[], supported: readonly string[]): string | undefined {
  return offered.find((o) => supported.includes(o));
}

/** The server-side negotiator for permessage-deflate (never accepts where zlib cannot run synchronously). */
export function deflateNegotiator(options: PerMessageDeflateOptions): ExtensionNegotiator {
  return {
    name: PERMESSAGE_DEFLATE,
    negotiate: (offers) => (SYNC_DEFLATE ? (acceptDeflateOffer(offers, options)?.response ?? null) : null),
  };
}

/**
 * The extensions a server supports, in its order of preference:
 * permessage-deflate first when enabled, then the application's.
 * Throws TypeError when permessage-deflate is given both ways.
 */
export function serverNegotiators(deflate: PerMessageDeflateOptions | null, extensions: readonly ExtensionNegotiator[] = []): ExtensionNegotiator[] {
  const list = [...extensions];
  if (deflate !== null) {
    if (list.some((n) => n.name === PERMESSAGE_DEFLATE)) {
      throw new TypeError('permessage-deflate is configured by the perMessageDeflate option, not by an extension negotiator');
    }
    list.unshift(deflateNegotiator(deflate));
  }
  return list;
}

/**
 * The server's side of extension negotiation (RFC 6455 §9.1): the
 * `Sec-WebSocket-Extensions` value to answer with and, when
 * permessage-deflate was accepted, its codec; an Error when a negotiator
 * answered with something invalid (the handshake then fails with 500).
 */
export function negotiateServerExtensions(
  offers: readonly ExtensionOffer[],
  negotiators: readonly ExtensionNegotiator[],
  deflate: PerMessageDeflateOptions | null,
  maxPayload: number,
): { extensions: string; deflate: PerMessageDeflate | null } | Error {
  if (negotiators.length === 0 || offers.length === 0) return { extensions: '', deflate: null };
  const accepted = negotiateExtensions(offers, negotiators);
  if (accepted instanceof Error) return accepted;
  return { extensions: formatExtensions(accepted), deflate: serverCodec(accepted, deflate, maxPayload) };
}

/**
 * The codec for an extensions header value that was already agreed (a
 * transport that negotiated on its own, such as an HTTP/2 stream): the
 * server's permessage-deflate when the value accepts it, else null. An
 * Error for a value that does not parse.
 */
export function serverCodecFor(extensions: string, deflate: PerMessageDeflateOptions | null, maxPayload: number): PerMessageDeflate | null | Error {
  if (extensions === '') return null;
  const parsed = parseExtensions(extensions);
  if (parsed instanceof Error) return parsed;
  const mine = parsed.filter((e) => e.name === PERMESSAGE_DEFLATE);
  // What a response may say (RFC 7692 §7.1): the extension once, each parameter once, known parameters, valid values.
  if (mine.length > 1) return new Error('permessage-deflate is accepted more than once');
  const pmd = mine[0];
  if (pmd === undefined || deflate === null) return null;
  if (pmd.repeated !== undefined) return new Error(`parameter "${pmd.repeated}" of extension "${pmd.name}" is given more than once`);
  const params = checkDeflateResponse(pmd.params, {});
  if (params instanceof Error) return params;
  return new PerMessageDeflate('server', params, deflate, maxPayload);
}

function serverCodec(accepted: readonly ExtensionOffer[], deflate: PerMessageDeflateOptions | null, maxPayload: number): PerMessageDeflate | null {
  const pmd = accepted.find((e) => e.name === PERMESSAGE_DEFLATE);
  if (pmd === undefined || deflate === null) return null;
  return new PerMessageDeflate('server', deflateParamsOf(pmd.params), deflate, maxPayload);
}

/** Request headers the handshake owns (RFC 6455 §4.1); an application's headers cannot replace them. */
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions']);

export interface ClientRequestOptions {
  /** The `Sec-WebSocket-Key` (generateKey()). */
  key: string;
  protocols: readonly string[];
  /** Offer permessage-deflate with these options; null offers nothing. */
  deflate: PerMessageDeflateOptions | null;
  /** The application's own headers; the handshake's own cannot be replaced. */
  headers?: Readonly<Record<string, string | number | string[] | undefined>>;
  /** The `Origin` header (replaces one in `headers`). */
  origin?: string;
}

/** Whether a client with these deflate options offers permessage-deflate (RFC 7692 needs synchronous zlib here). */
export function offersDeflate(deflate: PerMessageDeflateOptions | null): deflate is PerMessageDeflateOptions {
  return deflate !== null && SYNC_DEFLATE;
}

/** The headers of the client's opening handshake request (RFC 6455 §4.1; WHATWG WebSockets § 2.2). */
export function clientRequestHeaders(o: ClientRequestOptions): Record<string, string | number | string[]> {
  const headers: Record<string, string | number | string[]> = {};
  const given = new Set<string>();
  if (o.headers !== undefined) {
    for (const [name, value] of Object.entries(o.headers)) {
      const lower = name.toLowerCase();
      if (HANDSHAKE_HEADERS.has(lower) || value === undefined) continue;
      if (lower === 'origin' && o.origin !== undefined) continue;
      headers[name] = value;
      given.add(lower);
    }
  }
  if (o.origin !== undefined) headers['Origin'] = o.origin;
  // WHATWG § 2.2: the handshake is a fetch with cache mode "no-store", for which
  // Fetch adds these (they keep caching intermediaries out of the way).
  if (!given.has('pragma')) headers['Pragma'] = 'no-cache';
  if (!given.has('cache-control')) headers['Cache-Control'] = 'no-cache';
  headers['Connection'] = 'Upgrade';
  headers['Upgrade'] = 'websocket';
  headers['Sec-WebSocket-Key'] = o.key;
  headers['Sec-WebSocket-Version'] = '13';
  if (o.protocols.length > 0) headers['Sec-WebSocket-Protocol'] = o.protocols.join(', ');
  // WHATWG § 2.2 ("establish a WebSocket connection"): the user agent offers a
  // permessage-deflate of its choosing.
  if (offersDeflate(o.deflate)) headers['Sec-WebSocket-Extensions'] = formatExtensions([{ name: PERMESSAGE_DEFLATE, params: deflateOffer(o.deflate) }]);
  return headers;
}

/**
 * The client's check of the server's answer (RFC 6455 §4.1: the client MUST
 * validate the response; RFC 7692 §7.1 for permessage-deflate): what was
 * negotiated, or the Error that fails the connection.
 */
export function negotiateClient(
  res: ResponseInfo,
  key: string,
  protocols: readonly string[],
  deflate: PerMessageDeflateOptions | null,
  maxPayload: number,
): Negotiated | Error {
  const offered = offersDeflate(deflate) ? [PERMESSAGE_DEFLATE] : [];
  const accepted: AcceptedResponse | Error = checkUpgradeResponse(res, key, protocols, offered);
  if (accepted instanceof Error) return accepted;
  const mine = accepted.extensions.filter((e) => e.name === PERMESSAGE_DEFLATE);
  let codec: PerMessageDeflate | null = null;
  if (mine.length > 1) return new Error('server accepted permessage-deflate more than once');
  if (mine.length === 1 && deflate !== null) {
    const params = checkDeflateResponse(mine[0]!.params, deflate);
    if (params instanceof Error) return params;
    codec = new PerMessageDeflate('client', params, deflate, maxPayload);
  }
  return { protocol: accepted.protocol, extensions: accepted.extensionsHeader, deflate: codec };
}
