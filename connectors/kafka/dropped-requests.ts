/**
 * A produce request a broker dropped (it closes the connection of a request above its socket.request.max.bytes) is
 * told to the batching producer at the first drop, not after kafkajs's own retries of the produce (10, growing to 5 s:
 * ~30 s of capture stalled for every such request). kafkajs sees a dropped request as a network failure and sends it
 * again, dropped again each time. Here a produce of a send run under watchDrops whose connection closed asks the
 * watch first; when it answers true (the brokers' limit, read again, is lower than the one the request was cut within),
 * the produce fails with RequestDropped, which kafkajs does not retry, and the producer cuts its records again at once.
 * Any other closed connection (a broker stopped, an outage) goes on to kafkajs's retries as before.
 *
 * Installed when this module is first imported (before any producer sends).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createRequire } from "node:module";
import { isConnectionClosed } from "./kafka-errors.ts";

export interface DropWatch {
  /**
   * A broker closed the connection of one of the send's produce requests: whether kafkajs's retries of the send end now.
   * kafkajs sends a request to each partition leader at once; each drop waits for the read a first one started, so none
   * hands kafkajs's retrier the plain closed connection before the answer is known.
   */
  readonly onDropped: () => Promise<boolean>;
}

/** A dropped produce request kafkajs does not retry (its retrier reads `retriable`); its cause is the closed connection. */
export class RequestDropped extends Error {
  readonly retriable = false;

  constructor(cause: unknown) {
    super(`a Kafka broker closed the connection of a produce request over the brokers' request limit: ${(cause as Error).message}`, { cause });
    this.name = "RequestDropped";
  }
}

const watches = new AsyncLocalStorage<DropWatch>();

/** Runs `send` (a kafkajs sendBatch) with `watch` told of each of its produce requests whose connection a broker closed. */
export function watchDrops<T>(watch: DropWatch, send: () => Promise<T>): Promise<T> {
  return watches.run(watch, send);
}

interface Broker {
  produce(request: unknown): Promise<unknown>;
}

const { prototype } = createRequire(import.meta.url)("kafkajs/src/broker/index.js") as { prototype: Broker };
const produce = prototype.produce;
prototype.produce = async function (this: Broker, request: unknown): Promise<unknown> {
  try {
    return await produce.call(this, request);
  } catch (error) {
    const watch = watches.getStore();
    if (watch !== undefined && isConnectionClosed(error) && (await watch.onDropped().catch(() => false))) throw new RequestDropped(error);
    throw error;
  }
};
