/**
 * Close status codes and the close frame payload (RFC 6455 §5.5.1, §7.4).
 */
import { ProtocolError } from './errors.js';
import { isUtf8 } from './utf8.js';

/** Status codes with a name in RFC 6455 §7.4.1 and the IANA registry. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** Reserved: never on the wire; reported when a close frame had no code. */
  NoStatus: 1005,
  /** Reserved: never on the wire; reported when the TCP connection dropped without a close frame. */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  /** Reserved: never on the wire; TLS handshake failure. */
  TlsHandshake: 1015,
} as const;

/** The longest close reason: 125 bytes of control payload less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame (RFC 6455 §7.4.1, §7.4.2):
 * 1000-1003, 1007-1014 and the 3000-4999 ranges for libraries and applications.
 */
export function isValidWireCloseCode(code: number): boolean {
  // A close code is a 2-byte unsigned integer (RFC 6455 §5.5.1): 1000.5 is not 1000.
  if (!Number.isInteger(code)) return false;
  return (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}

export interface ClosePayload {
  /** The status code, or 1005 (NoStatus) when the frame carried none. */
  code: number;
  reason: string;
}

/** Decodes a received close frame payload, or returns the error it fails the connection with. */
export function decodeClosePayload(payload: Uint8Array): ClosePayload | ProtocolError {
  if (payload.length === 0) return { code: CloseCode.NoStatus, reason: '' };
  if (payload.length === 1) {
    return new ProtocolError(CloseCode.ProtocolError, 'close frame payload of 1 byte');
  }
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isValidWireCloseCode(code)) {
    return new ProtocolError(CloseCode.ProtocolError, `invalid close code ${code}`);
  }
  const reasonBytes = payload.subarray(2);
  if (!isUtf8(reasonBytes)) {
    return new ProtocolError(CloseCode.InvalidPayload, 'close reason is not valid UTF-8');
  }
  return { code, reason: Buffer.from(reasonBytes.buffer, reasonBytes.byteOffset, reasonBytes.length).toString('utf8') };
}

/**
 * Encodes a close frame payload. `code` undefined gives an empty payload.
 * The caller has checked the code and the reason's length.
 */
export function encodeClosePayload(code: number | undefined, reason: string): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const len = Buffer.byteLength(reason);
  const buf = Buffer.allocUnsafe(2 + len);
  buf.writeUInt16BE(code, 0);
  buf.write(reason, 2, 'utf8');
  return buf;
}
