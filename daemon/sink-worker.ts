/**
 * The entry point of a sink's worker thread (started by daemon/sink-thread.ts): opens its own
 * connection to the topic log, creates the sink and runs it, fetching schemas from the main
 * thread's registry by id and reporting state, metrics, queries and rebuilds over the port.
 */
import { SluiceError } from "../connectors/errors.ts";
import { parentPort, workerData } from "node:worker_threads";
import { STANDALONE_BATCH_BYTES } from "../config/memory.ts";
import { rememberSecrets, secretValues } from "../config/redact.ts";
import { reportUnreadableSecretFiles } from "../config/secret-files.ts";
import { noteKafkaCredentialsAccepted } from "../connectors/kafka/kafka-auth.ts";
import { lostTopicPolicyOf, openTopicLog, sinkWriter } from "../connectors/topics/open.ts";
import { retry } from "../runtime/backoff.ts";
import { createSink, deadLetterTopic, internalTopicSpec, personalDecryptor, recordDecoder, sinkGroupName, sinkTopics } from "./sink-components.ts";
import { createLogger } from "../runtime/logger.ts";
import { reportKafkaAuthentications, reportUnreadableKafkaSecret } from "./kafka-auth-report.ts";
import { SluiceMetrics } from "./metrics.ts";
import { isRebuildable, rebuildSink } from "./rebuild.ts";
import { rebuildTopics } from "./rebuild-tables.ts";
import { otherSinkProcesses, runningSinkSharing } from "./rebuild-sharing.ts";
import { abandonRebuild, REBUILD_RUNNING, rebuildRunningError } from "./rebuild-abandon.ts";
import { interruptedMessage, interruptedRebuild } from "./interrupted-rebuilds.ts";
import type { InterruptedRebuild } from "./interrupted-rebuilds.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";
import { isQueryable } from "./sink-query.ts";
import { sinkLeaseTtlMs } from "./sink-lease.ts";
import { SinkErasures } from "./sink-erasures.ts";
import { SinkRunner } from "./sink-runner.ts";
import { deserializeError, serializeError } from "./sink-thread.ts";
import type { FromSinkThread, SinkThreadCall, SinkThreadData, ToSinkThread } from "./sink-thread.ts";

const STATE_REPORT_MS = 200;

const port = parentPort!;
const { config, sink: sinkName, owner, reader, kafkaAccepted } = workerData as SinkThreadData;
const post = (message: FromSinkThread) => port.postMessage(message);

const sinkConfig = config.sinks.find((s) => s.name === sinkName)!;
rememberSecrets(secretValues(config));
const logger = createLogger(config.logging.level, { write: (line: string) => post({ type: "log", line }) }).child({ sink: sinkName });
const stop = new AbortController();
const metrics = new SluiceMetrics({ processMetrics: false });
// A secret file the sink cannot read again at a reconnection leaves the value read before: said and counted.
reportUnreadableSecretFiles((problem) => {
  if (reportUnreadableKafkaSecret(problem, logger, metrics)) return;
  const { key, file, code, reason } = problem;
  logger.warn({ key: `${key}_file`, file, code }, `sink ${sinkName}: its ${key}_file ${file} cannot be read (${code}: ${reason}); connecting with the value read before`);
  metrics.sinkSecretFileUnreadable.inc({ sink: sinkName });
});

// The main thread's Kafka clients were accepted before this thread started: a refusal at this thread's first connection
// is a password rotation under way, waited out, not a config error.
if (kafkaAccepted === true && config.topics.kind === "kafka") noteKafkaCredentialsAccepted(config.topics.sasl);
reportKafkaAuthentications(logger, metrics);

const schemaRequests = new Map<number, { resolve(schema: string): void; reject(error: Error): void }>();
let nextSchemaRequest = 0;
const registry = {
  getById(schemaId: number): Promise<string> {
    const id = nextSchemaRequest++;
    return new Promise<string>((resolve, reject) => {
      schemaRequests.set(id, { resolve, reject });
      post({ type: "schema-request", id, schemaId });
    });
  },
};

let answer: (call: SinkThreadCall) => Promise<unknown> = () => Promise.reject(new Error(`sink ${sinkName} is starting`));

port.on("message", (message: ToSinkThread) => {
  switch (message.type) {
    case "stop":
      stop.abort(new Error("stopping"));
      return;
    case "schema": {
      const request = schemaRequests.get(message.id);
      schemaRequests.delete(message.id);
      if ("schema" in message) request?.resolve(message.schema);
      else request?.reject(deserializeError(message.error));
      return;
    }
    case "call":
      answer(message).then(
        // A query's answer (its bytes, in a buffer of their own) is moved to the main thread, not copied.
        (value) => port.postMessage({ type: "result", id: message.id, value } satisfies FromSinkThread, message.method === "query" && value instanceof Uint8Array ? [value.buffer as ArrayBuffer] : []),
        (error: unknown) => post({ type: "result", id: message.id, error: serializeError(error) }),
      );
      return;
  }
});

async function main(): Promise<void> {
  const log = await openTopicLog(config.topics, config.name, logger, stop.signal, sinkWriter(sinkName, owner), { lazyProducer: true, lostTopics: lostTopicPolicyOf(config), ...(reader ? { readerLimits: reader } : {}) });
  try {
    const dlq = deadLetterTopic(config, sinkConfig);
    if (sinkConfig.on_error === "dead-letter") {
      await retry(() => log.createTopic(internalTopicSpec(dlq, config)), {
        initialMs: sinkConfig.retry.initial,
        maxMs: sinkConfig.retry.max,
        signal: stop.signal,
        onRetry: (err, attempt, delayMs) => logger.warn({ err: err instanceof Error ? err.message : String(err), attempt, delayMs }, "creating the dead-letter topic failed; retrying"),
      });
    }
    const group = sinkGroupName(config, sinkConfig);
    const topics = async () => sinkTopics(config, sinkConfig, await log.topicNames());
    const personal = personalDecryptor(config, log);
    let rebuild: RebuildProgress | null = null;
    let interrupted: InterruptedRebuild | null = null;
    let rebuilding = false;
    // Set at an abandon's first step, as `rebuilding` at a rebuild's: each refuses the other (an abandon overlapping a rebuild's start dropped its new tables).
    let abandoning = false;
    /** Shadows in the target while no rebuild runs here are a rebuild that stopped before its swap (interrupted-rebuilds.ts). */
    const lookForInterruptedRebuild = async (signal: AbortSignal, atStart: boolean): Promise<void> => {
      if (!isRebuildable(sink) || rebuilding) return;
      const found = interruptedRebuild(await sink.rebuildShadows?.(signal) ?? [], Date.now());
      if (found !== null && (atStart || interrupted === null)) logger.warn({ component: "rebuild", tables: found.tables, shadows: found.shadows, since: new Date(found.sinceMs).toISOString() }, interruptedMessage(sinkName, found));
      else if (found === null && interrupted !== null) logger.info({ component: "rebuild", tables: interrupted.tables }, "no interrupted rebuild left: its half-built tables were replaced by a rebuild or dropped");
      interrupted = found;
      metrics.rebuildInterruptedTables.set({ sink: sinkName }, found?.shadows.length ?? 0);
      report();
    };
    const decoder = recordDecoder(registry, personal);
    const sink = await createSink(sinkConfig, logger);
    const leaseTtlMs = sinkLeaseTtlMs();
    const runner = new SinkRunner({
      sink,
      log,
      group,
      topics,
      decoder,
      batch: { maxRows: sinkConfig.batch.max_rows, maxBytes: sinkConfig.batch.max_bytes ?? STANDALONE_BATCH_BYTES, maxWaitMs: sinkConfig.batch.max_wait },
      onError: sinkConfig.on_error,
      deadLetterTopic: dlq,
      retry: { initialMs: sinkConfig.retry.initial, maxMs: sinkConfig.retry.max },
      itemAttempts: sinkConfig.retry.item_attempts,
      blockedRetryMs: sinkConfig.retry.blocked_interval,
      tombstoneRetentionMs: config.topics.retention.tombstones,
      logger,
      metrics,
      owner,
      ...(leaseTtlMs === undefined ? {} : { leaseTtlMs }),
      onOpened: (signal) => lookForInterruptedRebuild(signal, true),
    });
    const erasures = new SinkErasures({ config, sinkConfig, sink, personal, betweenBatches: (operation) => runner.betweenBatches(operation), signal: stop.signal });
    answer = async (call) => {
      switch (call.method) {
        case "metrics":
          return metrics.registry.getMetricsAsJSON();
        case "query":
          if (!isQueryable(sink)) throw new Error(`sink ${sinkName} does not answer SQL`);
          return sink.readQueryJson(call.sql);
        case "abandon-rebuild": {
          if (!isRebuildable(sink)) throw new Error(`sink ${sinkName} cannot be rebuilt`);
          if (rebuilding) throw rebuildRunningError(sinkName);
          if (abandoning) throw new SluiceError(`sink "${sinkName}" is abandoning an interrupted rebuild now: wait for it to finish, then look again (sluice status)`, { code: REBUILD_RUNNING, context: { component: "rebuild", sink: sinkName } });
          abandoning = true;
          try {
            const abandoned = await abandonRebuild(sink, call.tables, call.execute, stop.signal, logger.child({ component: "rebuild" }), {
              group,
              others: () => otherSinkProcesses(log, group, 1),
            });
            if (call.execute) await lookForInterruptedRebuild(stop.signal, false);
            return abandoned;
          } finally {
            abandoning = false;
          }
        }
        case "rebuild": {
          if (!isRebuildable(sink)) throw new Error(`sink ${sinkName} cannot be rebuilt`);
          if (rebuilding || abandoning) throw new SluiceError(`sink "${sinkName}" is ${rebuilding ? "rebuilding" : "abandoning an interrupted rebuild"} now: wait for it to finish (sluice status shows it)`, { code: REBUILD_RUNNING, context: { component: "rebuild", sink: sinkName } });
          rebuilding = true;
          // Before anything else: a member seen from here on is one that joined during the rebuild.
          const watch = runner.watchGroupMembers();
          const sharing = runningSinkSharing(log, group, watch.seen);
          const rebuildLogger = logger.child({ component: "rebuild" });
          let guard: Awaited<ReturnType<typeof erasures.rebuildGuard>>;
          let topics: ReturnType<typeof rebuildTopics>;
          try {
            topics = rebuildTopics(config, sinkConfig, await log.topicNames(), call.tables);
            // Erasures while it runs: never inside one of its batches, and erased again in its new tables (sink-erasures.ts).
            guard = await erasures.rebuildGuard(rebuildLogger);
          } catch (error) {
            rebuilding = false;
            watch.end();
            throw error;
          }
          try {
            return await rebuildSink({
              sink,
              log,
              decoder,
              topics,
              group: `${group}.rebuild`,
              logger: rebuildLogger,
              signal: stop.signal,
              retry: { initialMs: sinkConfig.retry.initial, maxMs: sinkConfig.retry.max },
              onProgress: (progress) => {
                rebuild = progress;
                metrics.recordRebuild(progress);
                report();
              },
              exclusive: guard.exclusive,
              ...(guard.erasures ? { erasures: guard.erasures } : {}),
              // This process's member runs the sink here: only other processes' members refuse it, listed at a look or seen at a rebalance since it began.
              sharing,
            });
          } finally {
            guard.close();
            watch.end();
            rebuilding = false;
            // Swapped in, or failed and its shadows dropped: what is left of an earlier interrupted one (other tables) still shows.
            await lookForInterruptedRebuild(stop.signal, false).catch((error: unknown) => {
              if (!stop.signal.aborted) logger.warn({ err: error instanceof Error ? error.message : String(error) }, "looking for an interrupted rebuild failed");
            });
          }
        }
        case "erase":
          return erasures.erase(call.source, call.subject);
        case "release":
          // A halt sink has no dead-letter topic until an operator first skips a record to it.
          if (call.action === "skip" && call.execute) await log.createTopic(internalTopicSpec(dlq, config));
          return runner.release(call.table, call.action, call.execute, call.through == null ? null : call.through === "pending" ? "pending" : BigInt(call.through), call.force === true);
      }
    };
    const report = () =>
      post({ type: "state", ready: runner.ready(), waiting: runner.waitingFor(), lastAppliedCommitMs: runner.lastAppliedCommitTime(), credentialsRefusedSinceMs: runner.credentialsRefusedSince(), halted: runner.haltedTables(), partitions: runner.assignment(), rebuild, interrupted });
    const reporting = setInterval(report, STATE_REPORT_MS);
    post({ type: "started", queryable: isQueryable(sink), rebuildable: isRebuildable(sink) });
    try {
      await runner.run(stop.signal);
    } finally {
      clearInterval(reporting);
      report();
    }
  } finally {
    await log.close().catch((error: unknown) => logger.warn({ err: error }, "closing the topic log failed"));
  }
}

main().then(
  () => post({ type: "stopped" }),
  (error: unknown) => post({ type: "failed", error: serializeError(error) }),
);
