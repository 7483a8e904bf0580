/**
 * A transaction started while the previous one's commit is being completed: the coordinator
 * acknowledges a commit before it has written the commit markers, and until it has, it refuses the
 * next transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS. kafkajs sends that error
 * through its produce call's whole retry path (a metadata refresh, then 10 ms, 20 ms, ... with the
 * producer's retry settings). Here the request itself is sent again first, after short waits
 * (2 ms doubling to 20 ms -- Kafka's Java producer waits 20 ms -- for up to a second), before the
 * error goes on to kafkajs. The batching producer waits for the previous commit's markers before
 * the next transaction (untilVisible), so this is for when that wait ends early (it gives
 * up after 10 s) or the coordinator lags behind the partitions' markers.
 *
 * Installed when this module is first imported (before any producer sends).
 */
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";

export const FIRST_WAIT_MS = 2;
export const LONGEST_WAIT_MS = 20;
export const GIVE_UP_AFTER_MS = 1_000;

/** Calls `send` again while it fails with CONCURRENT_TRANSACTIONS, after short waits, for up to `giveUpAfterMs`; any other failure at once. */
export async function retryConcurrentTransactions<T>(send: () => Promise<T>, giveUpAfterMs = GIVE_UP_AFTER_MS, wait: (ms: number) => Promise<unknown> = sleep): Promise<T> {
  const started = performance.now();
  for (let waitMs = FIRST_WAIT_MS; ; waitMs = Math.min(waitMs * 2, LONGEST_WAIT_MS)) {
    try {
      return await send();
    } catch (error) {
      if ((error as { type?: unknown }).type !== "CONCURRENT_TRANSACTIONS" || performance.now() - started >= giveUpAfterMs) throw error;
      await wait(waitMs);
    }
  }
}

interface Broker {
  addPartitionsToTxn(request: unknown): Promise<unknown>;
}

const { prototype } = createRequire(import.meta.url)("kafkajs/src/broker/index.js") as { prototype: Broker };
const addPartitionsToTxn = prototype.addPartitionsToTxn;
prototype.addPartitionsToTxn = function (this: Broker, request: unknown): Promise<unknown> {
  return retryConcurrentTransactions(() => addPartitionsToTxn.call(this, request));
};
