/**
 * When each heartbeat still waiting in the read-ahead buffer arrived. A heartbeat says the server
 * had sent everything when it sent it, so the stream is complete through its arrival -- not through
 * the time it is decoded, which a slow reader makes later while events written since wait behind it
 * unread (in the buffer or the socket). The binlog stream stamps, the decoder takes, both in
 * arrival order; one time per buffered heartbeat, so the read-ahead bound bounds it too.
 */
import { EventType } from "./protocol/constants.ts";

const TYPE_OFFSET = 4;

export function isHeartbeat(event: Buffer): boolean {
  const type = event[TYPE_OFFSET];
  return type === EventType.HEARTBEAT || type === EventType.HEARTBEAT_V2;
}

export class HeartbeatArrivals {
  private readonly times: number[] = [];

  /** Every event received, in order, with the time it arrived. */
  received(event: Buffer, atMs: number): void {
    if (isHeartbeat(event)) this.times.push(atMs);
  }

  /** The next heartbeat decoded (in the order received): when it arrived. */
  take(): number | undefined {
    return this.times.shift();
  }
}
