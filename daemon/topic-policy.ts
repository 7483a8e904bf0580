/**
 * Whether the data topics hold the current state of every row, checked at start:
 *
 * - Data topics created before Sluice compacted them (cleanup policy delete) are found and
 *   reported: an embedded one is switched to compaction in place (EmbeddedTopicLog), a Kafka one
 *   gets a warning with the kafka-configs command that switches it (Sluice does not alter the
 *   configs of existing Kafka topics: AlterConfigs would reset the topic's other settings).
 * (A sink reading from before a partition's first kept record is told so: missed-history.ts.)
 */
import type { SluiceConfig } from "../config/schema.ts";
import type { TopicLog } from "../connectors/contracts.ts";
import type { SchemaRegistry } from "../schema-registry/index.ts";
import { subjectForTopic } from "../schema-registry/index.ts";
import { dataTopicSpec, parseDataTopic } from "./components.ts";
import type { Logger } from "../runtime/logger.ts";

export interface UncompactedTopic {
  readonly topic: string;
  /** Partitions whose first records retention already removed, with their first kept offset. */
  readonly gaps: readonly { readonly partition: number; readonly start: bigint }[];
  /** What to run (Kafka), or what Sluice did (embedded). */
  readonly fix: string;
}

/**
 * The data topics of keyed tables that are not compacted while `topics.retention.cleanup_policy`
 * asks for compaction; embedded ones are switched to compaction now. Each is logged as a warning.
 */
export async function reportUncompactedTopics(log: TopicLog, config: SluiceConfig, registry: Pick<SchemaRegistry, "getLatest">, logger: Logger): Promise<UncompactedTopic[]> {
  const policy = config.topics.retention.cleanup_policy;
  if (policy === "delete") return [];
  const sources = config.sources.map((s) => s.name);
  const found: UncompactedTopic[] = [];
  const dataTopics = (await log.topicNames()).filter((name) => parseDataTopic(config.name, sources, name) !== null);
  for (const spec of await log.listTopics(dataTopics)) {
    if (spec.compacted) continue;
    // A table without a key writes keyless records, which a compacted topic refuses: its topic stays as it is.
    if ((await registry.getLatest(subjectForTopic(spec.name, "key"))) === null) continue;
    const gaps = (await log.partitionOffsets(spec.name)).filter((p) => p.start > 0n).map((p) => ({ partition: p.partition, start: p.start }));
    const wanted = dataTopicSpec(config, spec.name, { keyed: true });
    let fix: string;
    if (log.kind === "embedded") {
      await log.createTopic(wanted);
      fix = "switched to compaction in place";
    } else {
      const broker = config.topics.kind === "kafka" ? config.topics.brokers[0] : "BROKER";
      const settings = [
        `cleanup.policy=${policy === "compact,delete" ? "[compact,delete]" : "compact"}`,
        `delete.retention.ms=${config.topics.retention.tombstones}`,
        `min.compaction.lag.ms=${config.topics.retention.min_compaction_lag}`,
      ];
      fix = `kafka-configs.sh --bootstrap-server ${broker} --alter --entity-type topics --entity-name ${spec.name} --add-config ${settings.join(",")}`;
      logger.warn(
        { topic: spec.name, fix, incompletePartitions: gaps.map((g) => `${spec.name}:${g.partition} starts at offset ${g.start}`) },
        `topic ${spec.name} was created with cleanup.policy=delete: its changes expire (retention.ms), so replaying it may not yield the table's current state. ` +
          "Switch it to compaction with the command in `fix` (topics.retention.cleanup_policy)" +
          (gaps.length > 0 ? "; retention already removed its first records, so rebuilds and new sinks need a re-snapshot (docs/operations.md, \"Rebuilds need complete history\")" : ""),
      );
    }
    found.push({ topic: spec.name, gaps, fix });
  }
  return found;
}
