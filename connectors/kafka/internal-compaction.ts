/**
 * The log cleaner's settings of Sluice's compacted internal topics that are written often: the
 * checkpoints (one record per Kafka transaction of capture, tens a second while busy) and the
 * instance announcements (each process every few seconds). Kafka never compacts a partition's
 * active segment, which by default rolls after 7 days or 1 GiB: such a topic kept every record of
 * days of capture, and every start read them all. With these, the active segment rolls every few
 * minutes and the cleaner compacts what rolled within as long, whatever its dirty ratio.
 *
 * A topic created by an earlier version has them set at start (by a process that may create
 * topics, never a read-only one), unless the topic has its own value for one of them.
 */
import kafkajs from "kafkajs";
import type { Admin } from "kafkajs";
import type { Logger } from "../../runtime/logger.ts";
import { checkpointTopic, instancesTopic } from "../topics/names.ts";

const ROLL_MS = 10 * 60_000;

/** Topic configs such a topic is created with (max.compaction.lag.ms also rolls the active segment: Kafka rolls at the smaller of the two). */
export const FREQUENT_COMPACTION: readonly { readonly name: string; readonly value: string }[] = [
  { name: "segment.ms", value: String(ROLL_MS) },
  { name: "max.compaction.lag.ms", value: String(ROLL_MS) },
];

/**
 * Sets FREQUENT_COMPACTION's configs on those of `topics` that have no value of their own for
 * them. Kafka's AlterConfigs (kafkajs has no incremental one) replaces all of a topic's own
 * configs, so the request carries the ones it has too. Never fails: a broker that refuses (no
 * ALTER_CONFIGS permission) only costs a slower start, which the warning says how to avoid.
 * The topics altered.
 */
export async function keepCompacting(admin: Admin, topics: readonly string[], logger: Logger): Promise<string[]> {
  const altered: string[] = [];
  try {
    const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: topics.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name })) });
    for (const resource of resources) {
      if (resource.errorCode !== 0) continue;
      const own = resource.configEntries.filter((e) => e.configSource === kafkajs.ConfigSource.TOPIC_CONFIG && !e.readOnly);
      const missing = FREQUENT_COMPACTION.filter((setting) => !own.some((e) => e.configName === setting.name));
      if (missing.length === 0) continue;
      // A value the broker does not tell (sensitive) would be lost by the request: left to the operator.
      if (own.some((e) => e.isSensitive || typeof e.configValue !== "string")) {
        warnNotSet(logger, resource.resourceName, missing, "the topic has a sensitive config of its own that AlterConfigs would reset");
        continue;
      }
      const configEntries = [...own.map((e) => ({ name: e.configName, value: e.configValue })), ...missing];
      try {
        await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: resource.resourceName, configEntries }] });
        altered.push(resource.resourceName);
        logger.info({ topic: resource.resourceName, set: Object.fromEntries(missing.map((s) => [s.name, s.value])) }, "internal topic made compactable: its active segment now rolls and is compacted within minutes");
      } catch (error) {
        warnNotSet(logger, resource.resourceName, missing, error instanceof Error ? error.message : String(error));
      }
    }
  } catch (error) {
    logger.warn({ topics, err: error instanceof Error ? error.message : String(error) }, "could not check the log cleaner settings of Sluice's internal topics; they are left as they are");
  }
  return altered;
}

function warnNotSet(logger: Logger, topic: string, missing: readonly { name: string; value: string }[], reason: string): void {
  logger.warn(
    { topic, reason, fix: `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${topic} --add-config ${missing.map((s) => `${s.name}=${s.value}`).join(",")}` },
    "internal topic left without its log cleaner settings: its records pile up until its segment rolls (7 days by default) and each start reads them all; set them with the command in `fix`",
  );
}

/** The internal topics created with FREQUENT_COMPACTION. */
export function frequentlyWritten(deployment: string): string[] {
  return [checkpointTopic(deployment), instancesTopic(deployment)];
}
