export { ProtocolError } from './errors.js';
export { Opcode, MAX_CONTROL_PAYLOAD, headerSize, writeHeader, maskInPlace } from './frame.js';
export { CloseCode, MAX_CLOSE_REASON_BYTES, isValidWireCloseCode, decodeClosePayload, encodeClosePayload } from './close.js';
export { Utf8Validator } from './utf8.js';
export { FrameParser, type ParserEvents, type ParserOptions } from './parser.js';
export { FrameWriter } from './writer.js';
export { Connection, ReadyState, type ConnectionEvents, type ConnectionOptions, type Role } from './connection.js';
export * from './handshake.js';
export { parseExtensions, formatExtensions, negotiateExtensions, isToken, type ExtensionOffer, type ExtensionNegotiator } from './extensions.js';
export {
  PerMessageDeflate,
  InflateError,
  PERMESSAGE_DEFLATE,
  SYNC_DEFLATE,
  acceptDeflateOffer,
  checkDeflateResponse,
  deflateOffer,
  deflateNegotiator,
  deflateParamsOf,
  resolveDeflateOptions,
  type DeflateParams,
  type PerMessageDeflateOptions,
} from './deflate.js';
