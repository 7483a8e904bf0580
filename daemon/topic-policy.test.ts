/** The start-time report of data topics created with delete retention (topic-policy.ts), on a real embedded log. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { LocalRegistry, openMemoryStore } from "../schema-registry/index.ts";
import { createLogger } from "../runtime/logger.ts";
import { reportUncompactedTopics } from "./topic-policy.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-topic-policy-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");

const config = (policy: string) =>
  loadConfigText(
    "c.yaml",
    `name: dep
sources: [{kind: postgres, name: pg, user: u, database: d, tables: ["public.*"]}]
topics: {kind: embedded, path: ${join(dir, "log.db")}, retention: {cleanup_policy: "${policy}"}}
`,
  );

const uncompacted = (name: string) => ({ name, partitions: 1, retentionMs: 1_000, retentionBytes: null, compacted: false });

test("embedded: data topics of keyed tables created with delete retention are switched to compaction at start; keyless tables' topics, other topics and the delete policy are left alone", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const registry = new LocalRegistry(await openMemoryStore());
  try {
    for (const name of ["dep.pg.public.items", "dep.pg.public.keyless", "dep.sluice.halted.pg", "other.pg.public.items"]) await log.createTopic(uncompacted(name));
    await registry.register("dep.pg.public.items-key", { type: "record", name: "Key", fields: [{ name: "id", type: "int" }] });
    await registry.register("other.pg.public.items-key", { type: "record", name: "Key", fields: [{ name: "id", type: "int" }] });

    assert.deepEqual(await reportUncompactedTopics(log, config("delete"), registry, logger), [], "cleanup_policy delete: nothing to report");
    const reported = await reportUncompactedTopics(log, config("compact"), registry, logger);
    assert.deepEqual(reported, [{ topic: "dep.pg.public.items", gaps: [], fix: "switched to compaction in place" }]);
    const specs = new Map((await log.listTopics()).map((s) => [s.name, s]));
    assert.equal(specs.get("dep.pg.public.items")?.compacted, true);
    assert.equal(specs.get("dep.pg.public.items")?.retentionMs, null, "compact: no expiry by age any more");
    for (const name of ["dep.pg.public.keyless", "dep.sluice.halted.pg", "other.pg.public.items"]) assert.equal(specs.get(name)?.compacted, false, name);
    assert.deepEqual(await reportUncompactedTopics(log, config("compact"), registry, logger), [], "reported once: it is compacted now");
  } finally {
    await log.close();
  }
});
