/**
 * Sluice's bookkeeping inside the ClickHouse database (ReplacingMergeTree tables, read with
 * argMax/max so unmerged parts never matter):
 * - `_sluice_tables`: one row per physical table `<target>__v<N>`: role (live/shadow), columns with
 *   their logical types, dropped flag; newest `_seq` wins;
 * - `_sluice_truncates`: per physical table the versions of truncates; the view hides rows at or
 *   below the maximum, so a replayed older row never shows after a truncate;
 * - `_sluice_targets`: the source table each target was first written for (lowest `_seq`);
 * - `_sluice_offsets`: per sink the next offset to read per partition, with the identity of the
 *   topic it was read from ('' in tables written before Sluice recorded it); newest `_seq` wins.
 * ClickHouse has no transactions: the sink writes these after the data they describe.
 */
import type { TableId, TopicPartitionOffset } from "../contracts.ts";
import type { StoredSinkOffset } from "../sinks/contract.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { bookkeepingSql, OFFSETS_TABLE, qualified, TABLES_TABLE, TARGETS_TABLE, TRUNCATES_TABLE } from "./ddl.ts";
import type { ClickHouseConnection } from "./connection.ts";
import { escapeText, parseTsv, sqlString, tsvLine, unescapeField } from "./tsv.ts";

export type Role = "live" | "shadow";

export interface ClickHouseTable {
  readonly physical: string;
  readonly target: string;
  role: Role;
  readonly generation: number;
  truncateVersion: bigint;
  /** Empty while the table is not created yet (a shadow prepared before any schema was known). */
  columns: readonly TargetColumn[];
}

export class ClickHouseCatalog {
  readonly #connection: ClickHouseConnection;
  readonly #database: string;
  #lastSeq = 0n;

  constructor(connection: ClickHouseConnection, database: string) {
    this.#connection = connection;
    this.#database = database;
  }

  async bootstrap(signal: AbortSignal): Promise<void> {
    await this.#connection.command(`CREATE DATABASE IF NOT EXISTS \`${this.#database.replace(/`/g, "\\`")}\``, signal);
    for (const sql of bookkeepingSql(this.#database)) await this.#connection.command(sql, signal);
  }

  /**
   * Offsets tables created before Sluice recorded topic identities lack `topic_id`: the first read
   * or write that misses it adds it, then runs again (18.16 has no ADD COLUMN IF NOT EXISTS).
   */
  async #withTopicIdColumn<T>(operation: () => Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!/ClickHouse error (16|47):[^]*topic_id/.test(error instanceof Error ? error.message : "")) throw error;
      try {
        await this.#connection.command(`ALTER TABLE ${qualified(this.#database, OFFSETS_TABLE)} ADD COLUMN topic_id String DEFAULT ''`, signal);
      } catch (alter) {
        // 44: another sink on the same database added it meanwhile.
        if (!/ClickHouse error 44:/.test(alter instanceof Error ? alter.message : "")) throw alter;
      }
      return operation();
    }
  }

  /** The tables in use, and per target the highest generation ever used (dropped ones included: names are never reused). */
  async load(signal: AbortSignal): Promise<{ tables: ClickHouseTable[]; generations: Map<string, number> }> {
    const rows = parseTsv(
      await this.#connection.select(
        `SELECT target, physical, argMax(role, _seq), argMax(generation, _seq), argMax(columns, _seq), argMax(dropped, _seq) ` +
          `FROM ${qualified(this.#database, TABLES_TABLE)} GROUP BY target, physical FORMAT TabSeparated`,
        signal,
      ),
    );
    const generations = new Map<string, number>();
    for (const fields of rows) {
      const target = text(fields[0]);
      generations.set(target, Math.max(generations.get(target) ?? 0, Number(text(fields[3]))));
    }
    const tables = rows.filter((fields) => text(fields[5]) === "0");
    const truncates = new Map(
      parseTsv(
        await this.#connection.select(`SELECT physical, max(version) FROM ${qualified(this.#database, TRUNCATES_TABLE)} GROUP BY physical FORMAT TabSeparated`, signal),
      ).map((fields) => [text(fields[0]), BigInt(text(fields[1]))]),
    );
    return {
      generations,
      tables: tables.map((fields) => {
        const physical = text(fields[1]);
        return {
          target: text(fields[0]),
          physical,
          role: text(fields[2]) === "shadow" ? "shadow" : "live",
          generation: Number(text(fields[3])),
          columns: JSON.parse(text(fields[4])) as TargetColumn[],
          truncateVersion: truncates.get(physical) ?? 0n,
        };
      }),
    };
  }

  async save(table: ClickHouseTable, signal: AbortSignal, dropped = false): Promise<void> {
    await this.saveAll([{ table, dropped }], signal);
  }

  /** Several tables' entries in one INSERT (one block: all saved or none), e.g. a swap's new table live and the old one dropped. */
  async saveAll(entries: readonly { readonly table: ClickHouseTable; readonly dropped: boolean }[], signal: AbortSignal): Promise<void> {
    const lines = entries.map(({ table, dropped }) =>
      tsvLine([table.target, table.physical, table.role, String(table.generation), JSON.stringify(table.columns), dropped ? "1" : "0", this.#seq().toString()].map(escapeText)),
    );
    await this.#connection.insert(
      qualified(this.#database, TABLES_TABLE),
      ["target", "physical", "role", "generation", "columns", "dropped", "_seq"],
      "TabSeparated",
      Buffer.concat(lines),
      signal,
    );
  }

  /** The source table each target was first written for (databases written before Sluice recorded it have none for their targets). */
  async loadOwners(signal: AbortSignal): Promise<Map<string, TableId>> {
    const rows = parseTsv(
      await this.#connection.select(
        "SELECT target, argMin(source, _seq), argMin(`database`, _seq), argMin(`schema`, _seq), argMin(`table`, _seq) " +
          `FROM ${qualified(this.#database, TARGETS_TABLE)} GROUP BY target FORMAT TabSeparated`,
        signal,
      ),
    );
    return new Map(rows.map((fields) => [text(fields[0]), { source: text(fields[1]), database: text(fields[2]), schema: text(fields[3]), table: text(fields[4]) }]));
  }

  async saveOwner(target: string, table: TableId, signal: AbortSignal): Promise<void> {
    const fields = [target, table.source, table.database, table.schema, table.table, this.#seq().toString()];
    await this.#connection.insert(qualified(this.#database, TARGETS_TABLE), ["target", "source", "`database`", "`schema`", "`table`", "_seq"], "TabSeparated", tsvLine(fields.map(escapeText)), signal);
  }

  async recordTruncate(physical: string, version: bigint, signal: AbortSignal): Promise<void> {
    await this.#connection.command(`INSERT INTO ${qualified(this.#database, TRUNCATES_TABLE)} (physical, version) VALUES (${sqlString(physical)}, ${version})`, signal);
  }

  async readOffsets(sink: string, signal: AbortSignal): Promise<StoredSinkOffset[]> {
    const rows = parseTsv(
      await this.#withTopicIdColumn(() => this.#connection.select(
        `SELECT topic, \`partition\`, argMax(\`offset\`, _seq), argMax(topic_id, _seq) FROM ${qualified(this.#database, OFFSETS_TABLE)} WHERE sink = ${sqlString(sink)} ` +
          "GROUP BY topic, `partition` ORDER BY topic, `partition` FORMAT TabSeparated",
        signal,
      ), signal),
    );
    return rows.map((fields) => ({ topic: text(fields[0]), partition: Number(text(fields[1])), offset: BigInt(text(fields[2])), topicId: text(fields[3]) || null }));
  }

  /** Stores each offset with its topic's identity from `topicIds` ('' when it has none). */
  async writeOffsets(sink: string, offsets: readonly TopicPartitionOffset[], topicIds: ReadonlyMap<string, string>, signal: AbortSignal): Promise<void> {
    if (offsets.length === 0) return;
    const seq = this.#seq().toString();
    const line = (o: TopicPartitionOffset) => tsvLine([sink, o.topic, String(o.partition), o.offset.toString(), topicIds.get(o.topic) ?? "", seq].map(escapeText));
    const body = Buffer.concat(offsets.map(line));
    await this.#withTopicIdColumn(() => this.#connection.insert(qualified(this.#database, OFFSETS_TABLE), ["sink", "topic", "`partition`", "`offset`", "topic_id", "_seq"], "TabSeparated", body, signal), signal);
  }

  /** Increasing per process, and across restarts as long as the clock does not go back by more than the restart takes. */
  #seq(): bigint {
    const now = BigInt(Date.now()) * 1000n;
    this.#lastSeq = now > this.#lastSeq ? now : this.#lastSeq + 1n;
    return this.#lastSeq;
  }
}

function text(field: Buffer | undefined): string {
  return field === undefined ? "" : unescapeField(field).toString("utf8");
}
