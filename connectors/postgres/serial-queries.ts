/**
 * One query at a time on a pg connection that several parts of capture use independently (the
 * catalog connection: the heartbeat's timer, the slot lag a metrics scrape reads, table discovery,
 * relation lookups, reads of moved rows, online snapshot requests). pg queues a query issued while
 * another runs, but warns that the queue is deprecated ("Calling client.query() when the client is
 * already executing a query ...") and pg 9 drops it: each query here waits for the one before.
 */
import type pg from "pg";

const settled = (): void => undefined;

/** Makes `client.query` wait for the client's previous query to settle; promise queries only. Returns the client. */
export function oneQueryAtATime<Client extends pg.Client>(client: Client): Client {
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  let previous: Promise<unknown> = Promise.resolve();
  const serial = (...args: unknown[]): Promise<unknown> => {
    if (typeof args.at(-1) === "function" || typeof (args[0] as { submit?: unknown } | null)?.submit === "function") {
      throw new TypeError("oneQueryAtATime: only queries that return a promise (no callback, no submittable) wait their turn");
    }
    const result = previous.then(() => query(...args));
    previous = result.then(settled, settled);
    return result;
  };
  client.query = serial as Client["query"];
  return client;
}
