/**
 * A session carried by a WebSocket (`fullduplex.channels.v1`). Channel
 * fan-out uses the WebSocketServer's own topics, so a publication is framed
 * once for all of a node's WebSocket subscribers of a channel.
 */
import type { ServerWebSocket } from '../index.js';
import { Session, SessionState } from './session.js';

/** The WebSocketServer topic every WebSocket session is in, for heartbeat pings (not a valid channel name). */
export const PING_TOPIC = '\u0000ping';

export class WsSession<T = unknown> extends Session<T> {
  readonly transport = 'websocket' as const;
  ws: ServerWebSocket<WsSession<T>> | null = null;

  send(text: string): void {
    this.ws?.send(text);
  }

  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  attachFanout(channel: string): boolean {
    this.ws?.subscribe(channel);
    return true;
  }

  detachFanout(channel: string): void {
    this.ws?.unsubscribe(channel);
  }

  protected end(code: number, reason: string): void {
    this.state = SessionState.Closed;
    this.ws?.close(code, reason);
  }
}
