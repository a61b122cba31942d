export { ProtocolError } from './errors.js';
export { Opcode, MAX_CONTROL_PAYLOAD, headerSize, writeHeader } from './frame.js';
export { maskInPlace } from './mask.js';
export { CloseCode, MAX_CLOSE_REASON_BYTES, isValidWireCloseCode, decodeClosePayload, encodeClosePayload } from './close.js';
export { Utf8Validator } from './utf8.js';
export { FrameParser, type ParserEvents, type ParserOptions } from './parser.js';
export { FrameWriter } from './writer.js';
export { ReadyState } from './ready-state.js';
export { Connection, type ConnectionEvents, type ConnectionOptions, type Role } from './connection.js';
export * from './handshake.js';
export * from './negotiate.js';
export { parseExtensions, formatExtensions, negotiateExtensions, isToken, type ExtensionOffer, type ExtensionNegotiator } from './extensions.js';
export { PerMessageDeflate, InflateError, SYNC_DEFLATE } from './deflate.js';
export {
  PERMESSAGE_DEFLATE,
  acceptDeflateOffer,
  checkDeflateResponse,
  deflateOffer,
  deflateParamsOf,
  resolveDeflateOptions,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from './deflate-params.js';
