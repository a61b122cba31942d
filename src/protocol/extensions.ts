/**
 * `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1):
 *
 *   extension-list = 1#extension
 *   extension      = token *( ";" param )
 *   param          = token [ "=" ( token | quoted-string ) ]
 */

export interface ExtensionOffer {
  name: string;
  /** Parameter values; a parameter given without a value maps to `true`. */
  params: Record<string, string | true>;
  /**
   * The first parameter named more than once, if any (its first value is in
   * `params`). Such an offer is declined (RFC 7692 §7.1 makes it a MUST for
   * permessage-deflate; it is ambiguous for any extension), and such a
   * response refused; the rest of the header still counts.
   */
  repeated?: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether `s` is an HTTP token (RFC 7230 §3.2.6). */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

/**
 * Parses an extensions header (several header lines may be joined by commas).
 * Returns the offers in order, or an Error describing the first syntax fault.
 */
export function parseExtensions(header: string): ExtensionOffer[] | Error {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  for (;;) {
    skipSpace();
    if (i >= n) break;
    if (header[i] === ',') {
      // Empty list elements are allowed by the #rule (RFC 7230 §7).
      i++;
      continue;
    }
    const name = readToken();
    if (name === '') return new Error(`invalid extension name at offset ${i}`);
    const params: Record<string, string | true> = Object.create(null);
    let repeated: string | undefined;
    skipSpace();
    while (i < n && header[i] === ';') {
      i++;
      skipSpace();
      const key = readToken();
      if (key === '') return new Error(`invalid parameter name in extension "${name}"`);
      skipSpace();
      let value: string | true = true;
      if (header[i] === '=') {
        i++;
        skipSpace();
        if (header[i] === '"') {
          i++;
          let v = '';
          while (i < n && header[i] !== '"') {
            if (header[i] === '\\') i++;
            if (i < n) v += header[i++];
          }
          if (header[i] !== '"') return new Error(`unterminated quoted string in extension "${name}"`);
          i++;
          // RFC 6455 §9.1: a quoted value must itself conform to the token ABNF.
          if (!isToken(v)) return new Error(`invalid quoted value for "${key}" in extension "${name}"`);
          value = v;
        } else {
          value = readToken();
          if (value === '') return new Error(`missing value for "${key}" in extension "${name}"`);
        }
        skipSpace();
      }
      if (key in params) repeated ??= key;
      else params[key] = value;
    }
    offers.push(repeated === undefined ? { name, params } : { name, params, repeated });
    skipSpace();
    if (i >= n) break;
    if (header[i] !== ',') return new Error(`unexpected character "${header[i]}" in extensions header`);
    i++;
  }
  return offers;
}

/** Serialises extensions for a header value. */
export function formatExtensions(list: readonly ExtensionOffer[]): string {
  return list
    .map((ext) => {
      let s = ext.name;
      for (const [k, v] of Object.entries(ext.params)) s += v === true ? `; ${k}` : `; ${k}=${v}`;
      return s;
    })
    .join(', ');
}

/**
 * One extension a server supports (RFC 6455 §9.1): given every offer of it
 * the client made, in the client's order of preference, it returns the
 * parameters of the one it accepts (echoed in the response), or null to
 * decline. It must not accept parameters the client did not offer.
 */
export interface ExtensionNegotiator {
  readonly name: string;
  negotiate(offers: ReadonlyArray<Record<string, string | true>>): Record<string, string | true> | null;
}

/**
 * The server side of extension negotiation (RFC 6455 §9.1): asks each
 * supported extension, in the server's order, about the client's offers of
 * it. Returns the accepted extensions, in that order, for the response's
 * `Sec-WebSocket-Extensions` (an empty list when none), or an Error when a
 * negotiator answered with something invalid.
 */
export function negotiateExtensions(
  offers: readonly ExtensionOffer[],
  supported: readonly ExtensionNegotiator[],
): ExtensionOffer[] | Error {
  const accepted: ExtensionOffer[] = [];
  for (const ext of supported) {
    const mine = offers.filter((o) => o.name === ext.name && o.repeated === undefined).map((o) => o.params);
    if (mine.length === 0) continue;
    const params = ext.negotiate(mine);
    if (params === null) continue;
    for (const [k, v] of Object.entries(params)) {
      if (!isToken(k) || (v !== true && !isToken(v))) {
        return new Error(`extension "${ext.name}" answered with an invalid parameter ${k}=${String(v)}`);
      }
    }
    accepted.push({ name: ext.name, params });
  }
  return accepted;
}
