/**
 * What `sluice forget` erases where: the personal tables of a source, the sinks that read them,
 * the requests each sink gets, and the audit records of every erasure
 * (`<deployment>.sluice.erasures`, JSON, never compacted).
 */
import { hostname, userInfo } from "node:os";
import type { SinkConfig, SluiceConfig } from "../../config/schema.ts";
import type { ProducedRecord, Sink, StoredRecord, TopicLog } from "../../connectors/contracts.ts";
import { tableMatcher } from "../../connectors/common/table-patterns.ts";
import { SluiceError } from "../../connectors/errors.ts";
import type { ErasureRequest } from "../../connectors/sinks/contract.ts";
import { isErasable } from "../../connectors/sinks/contract.ts";
import { personalTables } from "./personal-data.ts";

export function erasureAuditTopic(deployment: string): string {
  return `${deployment}.sluice.erasures`;
}

/** The erasure requests of one subject for one sink: the source's personal tables that the sink reads. */
export function erasureRequests(config: SluiceConfig, sink: SinkConfig, source: string, subject: string): ErasureRequest[] {
  const sourceConfig = config.sources.find((s) => s.name === source);
  if (!sourceConfig || !(sink.sources ?? config.sources.map((s) => s.name)).includes(source)) return [];
  const matches = tableMatcher(sink.tables);
  return [...personalTables(sourceConfig)].flatMap(([name, personal]) => {
    const dot = name.indexOf(".");
    const schema = name.slice(0, dot);
    // As the sources name their tables: a PostgreSQL table's database is the source's, a MySQL table's is its schema.
    const table = { source, database: sourceConfig.kind === "postgres" ? sourceConfig.database : schema, schema, table: name.slice(dot + 1) };
    return matches(table.schema, table.table) ? [{ table, subjectColumn: personal.subject, subject, columns: personal.columns }] : [];
  });
}

/** The sinks holding personal columns of the source. */
export function erasingSinks(config: SluiceConfig, source: string): SinkConfig[] {
  return config.sinks.filter((sink) => erasureRequests(config, sink, source, "").length > 0);
}

/**
 * Runs the requests on an open sink; the rows changed (where the target says). A table the sink
 * refuses to erase in (SINK_ERASE_UNSUPPORTED: its subject column's type) does not keep the other
 * tables from being erased: it fails the whole after them. Any other error stops at once (an
 * unreachable target fails every table alike).
 */
export async function eraseInSink(sink: Sink, requests: readonly ErasureRequest[], signal: AbortSignal): Promise<number | null> {
  if (!isErasable(sink)) {
    throw new SluiceError(`sink ${sink.name} cannot erase personal columns`, { code: "SINK_ERASE_UNSUPPORTED", context: { component: "sink", sink: sink.name } });
  }
  let changed: number | null = 0;
  const refused: SluiceError[] = [];
  for (const request of requests) {
    try {
      const rows = await sink.erase(request, signal);
      changed = rows === null || changed === null ? null : changed + rows;
    } catch (error) {
      if (!(error instanceof SluiceError && error.code === "SINK_ERASE_UNSUPPORTED")) throw error;
      refused.push(error);
    }
  }
  if (refused.length === 1) throw refused[0]!;
  if (refused.length > 1) throw new SluiceError(refused.map((e) => e.message).join("; "), { code: "SINK_ERASE_UNSUPPORTED", context: refused[0]!.context });
  return changed;
}

export interface ErasureAuditEntry {
  /** One id per run of `sluice forget --execute`. */
  readonly id: string;
  readonly event: "started" | "key-destroyed" | "sink-erased" | "completed" | "failed";
  readonly source: string;
  readonly subject: string;
  /** Who ran it: the operating system user and host of the command. */
  readonly by: string;
  /** ISO-8601 time. */
  readonly at: string;
  readonly sink?: string;
  /** sink-erased: rows changed where the target says. */
  readonly rows?: number | null;
  /** completed: the sinks that confirmed; failed: the reason. */
  readonly sinks?: readonly string[];
  readonly error?: string;
}

export function operator(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): the uid is all there is.
    user = String(process.getuid?.() ?? "unknown");
  }
  return `${user}@${hostname()}`;
}

export class ErasureAudit {
  private readonly log: TopicLog;
  private readonly topic: string;

  constructor(log: TopicLog, deployment: string) {
    this.log = log;
    this.topic = erasureAuditTopic(deployment);
  }

  async open(): Promise<void> {
    await this.log.createTopic({ name: this.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  }

  async record(entry: ErasureAuditEntry): Promise<void> {
    const record: ProducedRecord = { topic: this.topic, key: Buffer.from(`${entry.source}\u0000${entry.subject}`), value: Buffer.from(JSON.stringify(entry)), timestamp: Date.parse(entry.at) };
    await this.log.produce([record]);
  }

  /** Every entry, oldest first, optionally of one source (and subject). Reads the whole topic: erasures are few. */
  async entries(filter: { source?: string; subject?: string } = {}): Promise<ErasureAuditEntry[]> {
    if (!(await this.log.topicNames()).includes(this.topic)) return [];
    const ends = await this.log.endOffsets(this.topic);
    if (ends.every((e) => e.offset === 0n)) return [];
    const consumer = await this.log.consumer(`${this.topic}.reader.${process.pid}.${Date.now()}`, [this.topic]);
    const entries: ErasureAuditEntry[] = [];
    try {
      for (const end of ends) await consumer.seek(this.topic, end.partition, { kind: "earliest" });
      while (!ends.every((end) => (consumer.position(this.topic, end.partition) ?? 0n) >= end.offset)) {
        const records: StoredRecord[] = await consumer.poll({ maxRecords: 5_000, maxBytes: 8 << 20, maxWaitMs: 200 });
        for (const record of records) {
          if (record.value === null) continue;
          const entry = JSON.parse(Buffer.from(record.value).toString()) as ErasureAuditEntry;
          if ((filter.source === undefined || entry.source === filter.source) && (filter.subject === undefined || entry.subject === filter.subject)) entries.push(entry);
        }
      }
    } finally {
      await consumer.close();
    }
    return entries;
  }
}
