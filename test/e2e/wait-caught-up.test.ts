/**
 * waitCaughtUp (helpers.ts) against a stand-in daemon whose /status answers race as the real one's
 * can: the daemon measures the sinks' lags before it reads the sources' positions, so a batch made
 * durable in between shows as captured while its records were not in the lag yet.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import type { SluiceDaemon, Status } from "./helpers.ts";
import { waitCaughtUp } from "./helpers.ts";

const LSN = 0x1000n;

/** Capture writes its backlog (up to LSN) while the first /status is answered; the sink applies it from the second on. */
class RacingDaemon {
  readonly exitStatus = null;
  readonly fatalLine = null;
  readonly hasStarted = true;
  answers = 0;
  backlogDurable = false;
  backlogApplied = false;

  logTail(): string {
    return "";
  }

  async status(): Promise<Status> {
    this.answers++;
    // The lag first, from the topic's end before the backlog's transaction committed...
    const lagRecords = !this.backlogDurable || this.backlogApplied ? 0 : 67;
    if (this.backlogDurable) this.backlogApplied = true;
    // ...then the commit, then the position, already past the backlog.
    this.backlogDurable = true;
    const position = { commit: String(LSN), change: String(LSN) };
    return {
      deployment: "stand-in",
      ready: true,
      sources: [{ name: "src", ready: true, position, lagSeconds: 0, halted: [] }],
      sinks: [{ name: "local", ready: true, lagRecords, freshnessSeconds: 0, halted: [] }],
    } as unknown as Status;
  }
}

test("waitCaughtUp counts a lag of 0 only from a /status asked after the one showing the positions past the LSN", async () => {
  const daemon = new RacingDaemon();
  const client = { query: async () => ({ rows: [{ lsn: `0/${LSN.toString(16)}` }] }) } as unknown as pg.Client;
  await waitCaughtUp(daemon as unknown as SluiceDaemon, client, { timeoutMs: 10_000 });
  assert.ok(daemon.backlogApplied, `waitCaughtUp returned after ${daemon.answers} /status answer(s), before the sink applied what the sources' positions cover`);
});
