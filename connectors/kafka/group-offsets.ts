/**
 * Moving a consumer group's committed offsets (sluice replay, sluice halted skip without a running
 * sink). Kafka commits a group's offsets only from a member of the group, so kafkajs's
 * admin.setOffsets joins the group, seeks and leaves: once per topic, each time waiting out a whole
 * fetch of its paused consumer (5 s by default), ~7-10 s a topic. This joins once for every topic,
 * with a short fetch wait.
 */
import type { Admin, Kafka } from "kafkajs";
import kafkajs from "kafkajs";

const HOLD_WITHIN_MS = 60_000;

export interface GroupOffset {
  readonly topic: string;
  readonly partition: number;
  /** The next offset the group reads, as kafkajs takes it. */
  readonly offset: string;
}

/** A group with members (a sink running) is refused, as kafkajs's admin.setOffsets refuses it. */
export async function setGroupOffsets(kafka: Kafka, admin: Admin, groupId: string, offsets: readonly GroupOffset[]): Promise<void> {
  if (offsets.length === 0) return;
  const { groups } = await admin.describeGroups([groupId]);
  const state = groups[0]?.state ?? "Dead";
  if (state !== "Empty" && state !== "Dead") throw new kafkajs.KafkaJSNonRetriableError(`The consumer group must have no running instances, current state: ${state}`);
  const topics = [...new Set(offsets.map((o) => o.topic))];
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 });
  await consumer.connect();
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      // A fetch commits the seeks of its broker's partitions first; done once the group holds every offset.
      let checking = false;
      timer = setTimeout(() => reject(new Error(`consumer group ${groupId} did not hold the new offsets within ${HOLD_WITHIN_MS / 1000} s`)), HOLD_WITHIN_MS);
      consumer.on(consumer.events.FETCH, () => {
        if (checking) return;
        checking = true;
        void holdsOffsets(admin, groupId, topics, offsets).then((held) => {
          checking = false;
          if (held) resolve();
        }, reject);
      });
      consumer.on(consumer.events.CRASH, (event) => reject(event.payload.error));
      consumer.run({ eachBatchAutoResolve: false, eachBatch: async () => undefined }).catch(reject);
      consumer.pause(topics.map((topic) => ({ topic })));
      for (const { topic, partition, offset } of offsets) consumer.seek({ topic, partition, offset });
    });
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

async function holdsOffsets(admin: Admin, groupId: string, topics: readonly string[], offsets: readonly GroupOffset[]): Promise<boolean> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  return offsets.every((o) => committed.find((t) => t.topic === o.topic)?.partitions.find((p) => p.partition === o.partition)?.offset === o.offset);
}
