/**
 * A daemon asked to stop while it is still starting (an orchestrator's SIGTERM while Kafka is
 * unreachable and the start waits it out) stops like any requested stop: exit code 0, not killed
 * by the signal (it was, before its handlers were installed only once the start had finished).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { freePort, killAllDaemons, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("sluice-signal-start-");

after(async () => {
  await killAllDaemons();
  removeDir(dir);
});

test("SIGTERM while the start waits for an unreachable Kafka exits 0", { timeout: 120_000 }, async () => {
  const unreachable = `127.0.0.1:${await freePort()}`;
  const daemon = await SluiceDaemon.start(
    dir,
    {
      name: randomName("dep"),
      sources: [pgSourceConfig(randomName("src"), ["sig_start_never.*"])],
      topics: { kind: "kafka", brokers: [unreachable] },
      sinks: [],
      shutdown: { timeout: "10s" },
    },
    "signal-start",
  );
  // The start is waiting: /healthz answers, "sluice started" is never logged while Kafka is away.
  await waitFor("the start to be waiting for Kafka", async () => (await daemon.get("/readyz").catch(() => null))?.status === 503 || undefined, { daemon, timeoutMs: 30_000 });
  assert.equal(daemon.hasStarted, false, "the daemon started although its Kafka is unreachable");
  await daemon.stop(60_000);
  assert.match(daemon.logTail(), /signal while starting: stopping/);
});
