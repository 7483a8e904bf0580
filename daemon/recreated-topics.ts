/**
 * A data topic deleted while capture wrote to it, or while Sluice was stopped, is created again by the Kafka log
 * (declareTopic), holding only the changes from then on: a sink added later, or a replay from the beginning, would read
 * it from offset 0 and never equal the source, with no gap to see. So its table is read again: an online snapshot is requested from its source, and a
 * warning naming the table lasts in /status (sources[].warnings) saying what was asked, or the command to run.
 */
import type { OnlineSnapshotting } from "../connectors/common/incremental-snapshot-state.ts";
import type { SourceWarning } from "../connectors/common/source-warnings.ts";
import type { Logger } from "../runtime/logger.ts";
import { parseDataTopic } from "./sink-components.ts";

export const TOPIC_RECREATED = "TOPIC_RECREATED";

export interface RecreatedTopicsOptions {
  readonly deployment: string;
  readonly sources: readonly string[];
  /** The source's online snapshots when this process captures it and its kind takes them, else why not. */
  readonly snapshots: (source: string) => OnlineSnapshotting | string;
  readonly logger: Logger;
}

export class RecreatedTopics {
  private readonly options: RecreatedTopicsOptions;
  private readonly bySource = new Map<string, Map<string, SourceWarning>>();

  constructor(options: RecreatedTopicsOptions) {
    this.options = options;
  }

  /** Asks for the table's online snapshot (not awaited by the caller: capture's write must not wait for the source's catalog). */
  async recreated(topic: string): Promise<void> {
    const parsed = parseDataTopic(this.options.deployment, this.options.sources, topic);
    if (parsed === null) {
      // An outbox topic (<deployment>.outbox.<aggregate type> by default): no table's snapshot writes its events again.
      this.options.logger.warn({ code: TOPIC_RECREATED, topic }, `topic ${topic} was deleted (while capture wrote to it, or while Sluice was stopped) and created again: it is no table's topic (an outbox topic?), so nothing is read again; the events it held are gone`);
      return;
    }
    const table = `${parsed.schema}.${parsed.table}`;
    const command = `sluice snapshot -c FILE --table ${table} --execute`;
    const snapshots = this.options.snapshots(parsed.source);
    // A whole-table snapshot queued, or running with none of its rows stored yet (the initial one of a first start, whose
    // first row creates the topic), writes every row into the new topic: asking again would read the table twice
    // (request() queues every request it gets). One whose stored checkpoint has rows handed on (resumed at a restart after
    // the topic was deleted while stopped) writes only the rows after its last key: the table is read again, as after a
    // change. The stored task, not the listed one: the engine records a chunk's last key before capture writes its rows.
    const reading = typeof snapshots === "string" ? undefined : snapshots.list().tasks.find((task) => task.table === table && task.where === null && (snapshots.stored(task.id)?.lastKey ?? null) === null);
    if (reading !== undefined) {
      this.options.logger.info({ source: parsed.source, topic, table, task: reading.id, origin: reading.origin }, `topic ${topic} was created again while a snapshot of ${table} is queued or running (task ${reading.id}), which writes every row into it: nothing more is asked`);
      return;
    }
    let outcome: string;
    let asked = false;
    if (typeof snapshots === "string") {
      outcome = `no online snapshot could be requested (${snapshots}): read the table again by hand`;
    } else {
      try {
        const { task } = await snapshots.request(table, null, "topic-recreated");
        outcome = `an online snapshot of ${table} was requested (task ${task.id}; sluice snapshot list shows it)`;
        asked = true;
      } catch (error) {
        outcome = `the online snapshot of ${table} could not be requested (${error instanceof Error ? error.message : String(error)}): run ${command}`;
      }
    }
    const message =
      `topic ${topic} was deleted (while capture wrote to it, or while Sluice was stopped) and created again: it holds only the changes from then on, so a sink reading it from its first record ` +
      `(a sink added later, sluice replay --from-beginning) lacks the rows that did not change since; ${outcome}. Until that snapshot is done such a sink does not equal the source ` +
      `(docs/operations.md, "A sink refuses to start")`;
    const warning: SourceWarning = { code: TOPIC_RECREATED, message, topic, table, snapshotRequested: asked, command, at: new Date().toISOString() };
    let warnings = this.bySource.get(parsed.source);
    if (warnings === undefined) this.bySource.set(parsed.source, (warnings = new Map()));
    warnings.set(topic, warning);
    this.options.logger.warn({ code: TOPIC_RECREATED, source: parsed.source, topic, table, snapshotRequested: asked, command }, message);
  }

  /** The source's lasting warnings, one per topic created again since this process started. */
  warnings(source: string): readonly SourceWarning[] {
    return [...(this.bySource.get(source)?.values() ?? [])];
  }
}
