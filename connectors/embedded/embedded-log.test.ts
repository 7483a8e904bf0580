import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../runtime/logger.ts";
import type { TopicLog } from "../topics/contract.ts";
import { topicLogContractSuite } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-contract-"));
const path = join(dir, "sluice.db");
const logger = createLogger("warn");

topicLogContractSuite("embedded", {
  open: async () => EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 }),
  childConfig: { deployment: "contract", topics: { kind: "embedded", path, partitions: 3, retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 } },
  applyRetention: async (log: TopicLog) => {
    (log as EmbeddedTopicLog).runMaintenance();
  },
  cleanup: async () => rmSync(dir, { recursive: true, force: true }),
});
