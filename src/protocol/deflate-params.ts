/**
 * permessage-deflate (RFC 7692 §7.1): the options a side is willing to use,
 * and the negotiation of the extension's parameters on both sides, as pure
 * functions over extension parameters. The codec is in deflate.ts.
 */

export const PERMESSAGE_DEFLATE = 'permessage-deflate';

/** What a server or client is willing to do; every field optional. */
export interface PerMessageDeflateOptions {
  /** Messages shorter than this many bytes are sent uncompressed (default 1024). */
  threshold?: number;
  /**
   * zlib compression level, 0-9 (default 3). On 16 KiB JSON messages level 3
   * costs about 40% of the CPU of zlib's default 6 for about 10% more bytes:
   * on a real-time connection the event loop is the scarcer resource.
   */
  level?: number;
  /** zlib memLevel, 1-9 (default 7): memory for the compressor's state (192 KiB with a 15-bit window; 8 takes 256 KiB). */
  memLevel?: number;
  /** Ask that the server resets its compression context after every message. */
  serverNoContextTakeover?: boolean;
  /** Ask that the client resets its compression context after every message. */
  clientNoContextTakeover?: boolean;
  /** Largest LZ77 window, as bits (8-15), the server may compress with. */
  serverMaxWindowBits?: number;
  /** Largest LZ77 window, as bits (8-15), the client may compress with. */
  clientMaxWindowBits?: number;
}

/** The parameters both sides agreed on (RFC 7692 §7.1). */
export interface DeflateParams {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** 8-15; 15 when not negotiated. */
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
}

/** Extension parameters as parsed from, or written to, a header. */
export type Params = Record<string, string | true>;

export const DEFAULT_THRESHOLD = 1024;
/**
 * Compression defaults: the tuning `ws`'s own documentation suggests for
 * production (its example sets level 3 and memLevel 7 over zlib's 6 and 8).
 */
export const DEFAULT_LEVEL = 3;
export const DEFAULT_MEM_LEVEL = 7;

/**
 * zlib cannot compress raw deflate with an 8-bit window (it silently uses 9,
 * whose back-references an 8-bit inflater rejects). A sender held to 8 bits
 * compresses with Huffman coding only: no back-references at all, so any
 * window inflates it (less compression, always valid).
 */
export const MIN_ZLIB_WINDOW_BITS = 9;

/**
 * The settings a `perMessageDeflate` option asks for, checked (TypeError or
 * RangeError for nonsense); null when compression is off.
 */
export function resolveDeflateOptions(option: boolean | PerMessageDeflateOptions | undefined): PerMessageDeflateOptions | null {
  if (option === undefined || option === false) return null;
  if (option === true) return {};
  if (typeof option !== 'object' || option === null) throw new TypeError('perMessageDeflate must be a boolean or an options object');
  checkDeflateOptions(option);
  return { ...option };
}

function checkDeflateOptions(o: PerMessageDeflateOptions): void {
  const bits = (name: string, v: number | undefined): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < 8 || v > 15)) {
      throw new RangeError(`perMessageDeflate.${name} must be an integer from 8 to 15`);
    }
  };
  bits('serverMaxWindowBits', o.serverMaxWindowBits);
  bits('clientMaxWindowBits', o.clientMaxWindowBits);
  if (o.threshold !== undefined && (!Number.isFinite(o.threshold) || o.threshold < 0)) {
    throw new RangeError('perMessageDeflate.threshold must be a number >= 0');
  }
  if (o.level !== undefined && (!Number.isInteger(o.level) || o.level < 0 || o.level > 9)) {
    throw new RangeError('perMessageDeflate.level must be an integer from 0 to 9');
  }
  if (o.memLevel !== undefined && (!Number.isInteger(o.memLevel) || o.memLevel < 1 || o.memLevel > 9)) {
    throw new RangeError('perMessageDeflate.memLevel must be an integer from 1 to 9');
  }
}

/** A window-bits parameter value: "8".."15" as a number, or NaN. */
function windowBits(v: string | true | undefined): number {
  if (typeof v !== 'string' || !/^(8|9|1[0-5])$/.test(v)) return NaN;
  return Number(v);
}

/**
 * The server's choice among a client's offers (RFC 7692 §7.1): the first
 * offer it can accept, as the response parameters and the agreed parameters,
 * or null to decline them all.
 */
export function acceptDeflateOffer(offers: readonly Params[], options: PerMessageDeflateOptions): { response: Params; params: DeflateParams } | null {
  for (const offer of offers) {
    const params: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
    let clientWindowOffered = false;
    let clientWindowLimit = 15;
    let serverWindowRequested = 15;
    let valid = true;
    for (const [name, value] of Object.entries(offer)) {
      switch (name) {
        case 'server_no_context_takeover':
        case 'client_no_context_takeover':
          // §7.1.1: these take no value.
          if (value !== true) valid = false;
          else if (name === 'server_no_context_takeover') params.serverNoContextTakeover = true;
          else params.clientNoContextTakeover = true;
          break;
        case 'server_max_window_bits':
          // §7.1.2.1: a value is required.
          serverWindowRequested = windowBits(value);
          if (Number.isNaN(serverWindowRequested)) valid = false;
          break;
        case 'client_max_window_bits':
          // §7.1.2.2: the value is optional ("the client supports it").
          clientWindowOffered = true;
          if (value !== true) {
            clientWindowLimit = windowBits(value);
            if (Number.isNaN(clientWindowLimit)) valid = false;
          }
          break;
        default:
          // §7.1: an unknown parameter declines this offer.
          valid = false;
      }
    }
    if (!valid) continue;
    // Our compressor's window: at most what the client asked for and what we were told.
    const serverBits = Math.min(serverWindowRequested, options.serverMaxWindowBits ?? 15);
    params.serverMaxWindowBits = serverBits;
    if (options.serverNoContextTakeover === true) params.serverNoContextTakeover = true;
    if (options.clientNoContextTakeover === true) params.clientNoContextTakeover = true;
    const response: Params = {};
    if (params.serverNoContextTakeover) response.server_no_context_takeover = true;
    if (params.clientNoContextTakeover) response.client_no_context_takeover = true;
    if (serverBits < 15 || 'server_max_window_bits' in offer) response.server_max_window_bits = String(serverBits);
    if (clientWindowOffered) {
      // §7.1.2.2: only when offered; never above the client's own limit.
      const clientBits = Math.min(clientWindowLimit, options.clientMaxWindowBits ?? 15);
      params.clientMaxWindowBits = clientBits;
      if (clientBits < 15 || clientWindowLimit < 15) response.client_max_window_bits = String(clientBits);
    }
    return { response, params };
  }
  return null;
}

/** Reads back the agreed parameters from a response we (the server) built. */
export function deflateParamsOf(response: Params): DeflateParams {
  return {
    serverNoContextTakeover: response.server_no_context_takeover === true,
    clientNoContextTakeover: response.client_no_context_takeover === true,
    serverMaxWindowBits: typeof response.server_max_window_bits === 'string' ? Number(response.server_max_window_bits) : 15,
    clientMaxWindowBits: typeof response.client_max_window_bits === 'string' ? Number(response.client_max_window_bits) : 15,
  };
}

/** The client's offer (RFC 7692 §7.1), as extension parameters. */
export function deflateOffer(options: PerMessageDeflateOptions): Params {
  const offer: Params = {};
  if (options.serverNoContextTakeover === true) offer.server_no_context_takeover = true;
  if (options.clientNoContextTakeover === true) offer.client_no_context_takeover = true;
  if (options.serverMaxWindowBits !== undefined) offer.server_max_window_bits = String(options.serverMaxWindowBits);
  // Always say we can limit our window, as browsers do, so a server may ask it.
  offer.client_max_window_bits = options.clientMaxWindowBits !== undefined ? String(options.clientMaxWindowBits) : true;
  return offer;
}

/**
 * Checks a server's response to our offer (RFC 7692 §7.1, the client side):
 * the agreed parameters, or an Error for a response the client must refuse
 * (it then fails the connection).
 */
export function checkDeflateResponse(response: Params, options: PerMessageDeflateOptions): DeflateParams | Error {
  const params: DeflateParams = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: options.clientNoContextTakeover === true,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: options.clientMaxWindowBits ?? 15,
  };
  for (const [name, value] of Object.entries(response)) {
    switch (name) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        if (value !== true) return new Error(`permessage-deflate: ${name} takes no value`);
        if (name === 'server_no_context_takeover') params.serverNoContextTakeover = true;
        else params.clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits': {
        const bits = windowBits(value);
        if (Number.isNaN(bits)) return new Error(`permessage-deflate: invalid server_max_window_bits "${String(value)}"`);
        if (options.serverMaxWindowBits !== undefined && bits > options.serverMaxWindowBits) {
          return new Error(`permessage-deflate: server_max_window_bits=${bits} is above the ${options.serverMaxWindowBits} offered`);
        }
        params.serverMaxWindowBits = bits;
        break;
      }
      case 'client_max_window_bits': {
        const bits = windowBits(value);
        if (Number.isNaN(bits)) return new Error(`permessage-deflate: invalid client_max_window_bits "${String(value)}"`);
        if (bits > (options.clientMaxWindowBits ?? 15)) return new Error(`permessage-deflate: client_max_window_bits=${bits} is above the offer`);
        params.clientMaxWindowBits = bits;
        break;
      }
      default:
        return new Error(`permessage-deflate: unknown parameter "${name}" in the response`);
    }
  }
  if (options.serverNoContextTakeover === true && !params.serverNoContextTakeover) {
    return new Error('permessage-deflate: the server did not accept server_no_context_takeover');
  }
  return params;
}
