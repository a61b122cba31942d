/**
 * Publication payloads on the wire (PROTOCOL.md §1): JSON values travel in
 * `data`, bytes in `b64` (standard base64), both directions.
 */

/** The wire fields for `data`: `{b64}` for bytes, `{data}` for anything else. */
export function encodePayload(data: unknown): { data: unknown } | { b64: string } {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { b64: btoa(s) };
  }
  return { data };
}

/** The application's view of a wire payload: a Uint8Array for `b64`, else `data`. Throws for `b64` that is not base64. */
export function decodePayload(fields: { [field: string]: unknown }): unknown {
  if (typeof fields.b64 !== 'string') return fields.data;
  const s = atob(fields.b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}
