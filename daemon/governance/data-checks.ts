/**
 * Runtime data checks at capture (config `sources[].governance.tables.<table>.checks` and
 * `governance.freshness`). Each inserted, updated or snapshot row is checked as captured (before
 * transforms); a failure is counted and logged with its table, key, column and check -- never the
 * value -- and then, by the check's action, the change is published anyway (warn), sent to the
 * source's dead-letter topic instead of its topic (dead-letter), or its table halts at capture
 * (halt: the table-halt path of daemon/capture.ts, released with `sluice halted retry|skip`).
 */
import type { ChangeEncoder, ParkedChangeSealer } from "../capture.ts";
import type { ChangeEvent, ColumnValue, ProducedRecord, TableSchema } from "../../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { dataCheckDeadLetterTopic } from "../../connectors/topics/names.ts";
import type { DataCheck, GovernanceConfig } from "../../config/governance.ts";
import { serializeEventBytes } from "../event-json.ts";
import { whenDurable } from "../when-durable.ts";
import type { Logger } from "../../runtime/logger.ts";
import { valueText } from "./transforms.ts";

/** Error code of a change refused by a check with action halt (a table-halting code in capture.ts). */
export const DATA_CHECK_FAILED = "DATA_CHECK_FAILED";

export interface DataCheckStats {
  onRowsChecked?(table: string, rows: number): void;
  onFailure?(table: string, check: string): void;
}

export { dataCheckDeadLetterTopic };

/** What `sluice status` shows of a check that failed. */
export interface DataCheckFailures {
  readonly table: string;
  readonly check: string;
  readonly column: string | null;
  readonly action: string;
  readonly failures: number;
  readonly lastKey: string | null;
  readonly lastAt: string;
}

interface Failure {
  readonly check: DataCheck;
  readonly reason: string;
}

type Predicate = (value: Exclude<ColumnValue, typeof UNCHANGED>, schema: TableSchema) => string | null;

/** Why a value fails the check, or null when it passes (null passes every check but not_null). */
function predicate(check: DataCheck): Predicate {
  switch (check.check) {
    case "not_null":
      return (value) => (value === null ? "is null" : null);
    case "range":
    {
      // The bounds in the column's unit, worked out once per table schema (not per row).
      const bounds = new WeakMap<TableSchema, { min: number | undefined; max: number | undefined }>();
      let lastSchema: TableSchema | null = null;
      let last: { min: number | undefined; max: number | undefined } | undefined;
      return (value, schema) => {
        if (value === null) return null;
        const n = numeric(value);
        if (n === null) return "is not a number";
        let known = schema === lastSchema ? last : bounds.get(schema);
        if (!known) {
          const dbType = schema.columns.find((c) => c.name === check.column)?.dbType ?? "";
          known = { min: check.min === undefined ? undefined : boundOf(check.min, dbType), max: check.max === undefined ? undefined : boundOf(check.max, dbType) };
          bounds.set(schema, known);
        }
        lastSchema = schema;
        last = known;
        const { min, max } = known;
        if (min !== undefined && n < min) return `is below the range's min ${String(check.min)}`;
        if (max !== undefined && n > max) return `is above the range's max ${String(check.max)}`;
        return null;
      };
    }
    case "regex": {
      const pattern = new RegExp(check.pattern, "u");
      return (value) => (value === null || pattern.test(valueText(value)) ? null : `does not match ${check.pattern}`);
    }
    case "one_of": {
      const allowed = new Set(check.values.map(String));
      return (value) => (value === null || allowed.has(valueText(value)) ? null : "is not one of the values allowed");
    }
    case "max_length":
      return (value) => {
        if (value === null) return null;
        const length = value instanceof Uint8Array ? value.length : [...valueText(value)].length;
        return length > check.length ? `is ${length} long, over ${check.length}` : null;
      };
    case "unique_in_batch":
      return () => null; // batch-wide: see DataChecks.inspect
  }
}

function numeric(value: Exclude<ColumnValue, null | typeof UNCHANGED>): number | null {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string") {
    const n = Number(value);
    return Number.isNaN(n) || value.trim() === "" ? null : n;
  }
  return null;
}

/** A bound in the column's own unit: dates as days, timestamps as microseconds since the epoch (the captured values' units). */
function boundOf(bound: number | string, dbType: string): number {
  if (typeof bound === "number") return bound;
  const ms = Date.parse(/^\d{4}-\d\d-\d\d$/.test(bound) ? `${bound}T00:00:00Z` : bound);
  if (Number.isNaN(ms)) return Number(bound);
  if (/^date\b/.test(dbType)) return Math.floor(ms / 86_400_000);
  return ms * 1000;
}

function keyText(event: ChangeEvent): string {
  const text = JSON.stringify(event.key, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)) ?? "{}";
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** The checks of one source. */
export class DataChecks {
  readonly sourceName: string;
  private readonly rules: ReadonlyMap<string, readonly { check: DataCheck; test: Predicate }[]>;
  private readonly logger: Logger;
  private readonly stats: DataCheckStats;
  private readonly seen = new Map<string, Set<string>>();
  private readonly failed = new Map<string, { table: string; check: string; column: string | null; action: string; failures: number; lastKey: string | null; lastAt: string }>();
  private lastChangeMs = Date.now();
  /** The table name and checks of the last table schema met: a batch's events mostly share one. */
  private lastSchema: TableSchema | null = null;
  private lastTable = "";
  private lastChecks: readonly { check: DataCheck; test: Predicate }[] | undefined;
  private quietReported = false;
  /** Table schemas whose checks' columns were looked for, and the checks found without their column (warned once). */
  private readonly columnsLooked = new WeakSet<TableSchema>();
  private readonly columnAbsent = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  /** Rows checked not reported yet (countRow), all of one table. */
  private pendingTable = "";
  private pendingRows = 0;
  private reportQueued = false;
  /**
   * Failures of the change being checked, counted once its records are durable (withDataChecks sets it, takeFailures
   * hands them over): a change checked again (its batch encoded again after a failed write) is counted once. Null: counted at once.
   */
  private unreported: { table: string; check: string }[] | null = null;

  constructor(sourceName: string, config: GovernanceConfig, logger: Logger, stats: DataCheckStats = {}) {
    this.sourceName = sourceName;
    this.logger = logger.child({ component: "data-checks", source: sourceName });
    this.stats = stats;
    this.rules = new Map(Object.entries(config?.tables ?? {}).map(([table, t]) => [table, t.checks.map((check) => ({ check, test: predicate(check) }))]));
    const quiet = config?.freshness?.max_quiet;
    if (quiet !== undefined) {
      this.timer = setInterval(() => this.checkFreshness(quiet), Math.max(50, Math.min(10_000, Math.floor(quiet / 4))));
      this.timer.unref();
    }
  }

  get active(): boolean {
    return this.timer !== null || [...this.rules.values()].some((checks) => checks.length > 0);
  }

  /** A new source batch: unique_in_batch starts over. */
  startBatch(): void {
    this.seen.clear();
  }

  /**
   * A check whose column the table does not have never fails (the column renamed or dropped at the source, or misspelt in
   * the config): said once, at warn, so that a check that stopped running is not taken for a table that passes it.
   */
  private lookForColumns(schema: TableSchema, table: string, checks: readonly { check: DataCheck }[]): void {
    if (this.columnsLooked.has(schema)) return;
    this.columnsLooked.add(schema);
    for (const { check } of checks) {
      const id = `${table}\u0000${check.check}\u0000${check.column}`;
      if (schema.columns.some((c) => c.name === check.column)) {
        this.columnAbsent.delete(id);
        continue;
      }
      if (this.columnAbsent.has(id)) continue;
      this.columnAbsent.add(id);
      this.logger.warn(
        { table, column: check.column, check: check.check, action: check.action },
        `data check ${check.check} of column ${check.column} does not run: table ${table} has no column ${check.column} (renamed or dropped at the source, or misspelt in the config); name the column as the table has it now in governance.tables.${table}.checks and restart`,
      );
    }
  }

  /** From now on the metric counts a change's failures when its records are durable (takeFailures, reportFailures), not when it is checked. */
  countWhenDurable(): void {
    this.unreported ??= [];
  }

  /** The failures of the changes checked since the last call, for the metric; null when none (or not deferred). */
  takeFailures(): { table: string; check: string }[] | null {
    if (this.unreported === null || this.unreported.length === 0) return null;
    const taken = this.unreported;
    this.unreported = [];
    return taken;
  }

  reportFailures(failures: readonly { table: string; check: string }[] | null): void {
    if (failures !== null) for (const { table, check } of failures) this.stats.onFailure?.(table, check);
  }

  /** Failures so far, per table, check and column. */
  failures(): DataCheckFailures[] {
    return [...this.failed.values()].map((f) => ({ ...f }));
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The first failure of a check with action dead-letter, null when the change is published; a halt check's failure throws DATA_CHECK_FAILED. */
  inspect(event: ChangeEvent): Failure | null {
    this.lastChangeMs = Date.now();
    this.quietReported = false;
    if (event.schema !== this.lastSchema) {
      this.lastSchema = event.schema;
      this.lastTable = tableName(event.schema);
      this.lastChecks = this.rules.get(this.lastTable);
      if (this.lastChecks !== undefined) this.lookForColumns(event.schema, this.lastTable, this.lastChecks);
    }
    const table = this.lastTable;
    const checks = this.lastChecks;
    const row = event.after;
    if (!checks || checks.length === 0 || row === null) return null;
    this.countRow(table);
    let deadLetter: Failure | null = null;
    for (let i = 0; i < checks.length; i++) {
      const { check, test } = checks[i]!;
      const value = row[check.column];
      if (value === UNCHANGED || value === undefined) continue;
      const reason = check.check === "unique_in_batch" ? this.duplicate(table, check.column, value) : test(value, event.schema);
      if (reason === null) continue;
      const failure = { check, reason };
      this.record(event, table, failure);
      if (check.action === "halt") {
        // The table halts (the change is parked, checked again only when an operator releases it): counted now.
        this.reportFailures(this.takeFailures());
        throw new SluiceError(
          `table ${table}: the row with key ${keyText(event)} fails data check ${check.check} of column ${check.column} (its value ${reason}); the table is halted at capture. Fix the row at the source or the check, then "sluice halted retry|skip --source ${this.sourceName} --table ${table}"`,
          { code: DATA_CHECK_FAILED, context: { component: "capture", source: this.sourceName, table, column: check.column, key: keyText(event), check: check.check } },
        );
      }
      if (check.action === "dead-letter") deadLetter ??= failure;
    }
    return deadLetter;
  }

  /**
   * Rows checked are reported per table once the current synchronous run of inspections is over
   * (a microtask: capture checks a batch's changes in one run), not per row: the labelled counter
   * hashes its labels at every increment.
   */
  private countRow(table: string): void {
    if (!this.stats.onRowsChecked) return;
    if (this.pendingRows > 0 && table !== this.pendingTable) this.reportRows();
    this.pendingTable = table;
    this.pendingRows += 1;
    if (!this.reportQueued) {
      this.reportQueued = true;
      queueMicrotask(this.reportRows);
    }
  }

  private readonly reportRows = (): void => {
    this.reportQueued = false;
    const rows = this.pendingRows;
    if (rows === 0) return;
    this.pendingRows = 0;
    this.stats.onRowsChecked!(this.pendingTable, rows);
  };

  private duplicate(table: string, column: string, value: Exclude<ColumnValue, typeof UNCHANGED>): string | null {
    if (value === null) return null;
    const name = `${table}\u0000${column}`;
    let values = this.seen.get(name);
    if (!values) this.seen.set(name, (values = new Set()));
    const text = valueText(value);
    if (values.has(text)) return "repeats the value of another row in the same source batch";
    values.add(text);
    return null;
  }

  private record(event: ChangeEvent | null, table: string, failure: Failure): void {
    const { check } = failure;
    const column = "column" in check ? check.column : null;
    const id = `${table}\u0000${check.check}\u0000${column ?? ""}`;
    const key = event ? keyText(event) : null;
    const entry = this.failed.get(id) ?? { table, check: check.check, column, action: check.action, failures: 0, lastKey: null, lastAt: "" };
    entry.failures++;
    entry.lastKey = key;
    entry.lastAt = new Date().toISOString();
    this.failed.set(id, entry);
    if (this.unreported !== null && event !== null) this.unreported.push({ table, check: check.check });
    else this.stats.onFailure?.(table, check.check);
    // The value is never logged: it may be the very data the check guards.
    this.logger.warn({ table, key, column, check: check.check, action: check.action, reason: failure.reason }, `data check ${check.check} failed: table ${table}, key ${key ?? "-"}, column ${column ?? "-"} (${check.action})`);
  }

  private checkFreshness(maxQuietMs: number): void {
    const quietMs = Date.now() - this.lastChangeMs;
    if (quietMs < maxQuietMs || this.quietReported) return;
    this.quietReported = true;
    const check = { check: "freshness", action: "warn" } as unknown as DataCheck;
    this.record(null, "*", { check, reason: `no change captured for ${Math.round(quietMs / 1000)}s (max_quiet ${Math.round(maxQuietMs / 1000)}s)` });
  }
}

/**
 * Wraps a source's encoder with its checks: a change failing a dead-letter check becomes one
 * record of `deadLetterTopic` (the change as JSON, headers naming the check, column and reason --
 * not the value) instead of its records. With `sealer`, its personal values are sealed with their
 * subject's key (or left out) as in the parking topic, never in clear.
 */
export function withDataChecks(
  checks: DataChecks,
  inner: ChangeEncoder,
  deadLetterTopic: string,
  createTopic: () => Promise<void>,
  sealer?: ParkedChangeSealer,
): ChangeEncoder & { startBatch(): void } {
  if (!checks.active) return Object.assign(inner, { startBatch: () => undefined });
  checks.countWhenDurable();
  // The change's failures counted once its first record is durable (capture runs the work after the write that stored
  // it); a change that makes no record is counted at once.
  type Failures = ReturnType<DataChecks["takeFailures"]>;
  const counted = (records: ProducedRecord[], failures: Failures = checks.takeFailures()): ProducedRecord[] => {
    if (failures === null) return records;
    if (records[0] === undefined) checks.reportFailures(failures);
    else whenDurable(records[0], () => checks.reportFailures(failures));
    return records;
  };
  let created = false;
  // An event encodeNow checked but left to encode (capture calls encode next, with the same event): checked once, not twice.
  let checked: { event: ChangeEvent; failure: Failure | null } | null = null;
  const deadLetter = (event: ChangeEvent, failure: Failure, sealing: Record<string, Uint8Array> = {}): ProducedRecord[] => {
    const column = "column" in failure.check ? failure.check.column : "";
    return [
      {
        topic: deadLetterTopic,
        key: Buffer.from(tableName(event.schema)),
        value: serializeEventBytes(event),
        headers: {
          "sluice.reason": Buffer.from(`data check ${failure.check.check} of column ${column}: the value ${failure.reason}`),
          "sluice.check": Buffer.from(failure.check.check),
          "sluice.column": Buffer.from(column),
          "sluice.table": Buffer.from(tableName(event.schema)),
          ...sealing,
        },
        timestamp: event.source.commitTimeMs,
      },
    ];
  };
  return {
    ...(inner.prepare ? { prepare: (events: readonly ChangeEvent[]) => inner.prepare!(events) } : {}),
    startBatch: () => checks.startBatch(),
    encodeNow(event: ChangeEvent): ProducedRecord[] | undefined {
      if (!inner.encodeNow) return undefined;
      const failure = checks.inspect(event);
      // A dead letter to seal waits for its key: `encode`.
      const records = failure === null ? inner.encodeNow(event) : created && !sealer ? deadLetter(event, failure) : undefined;
      if (records === undefined) checked = { event, failure };
      return records === undefined ? undefined : counted(records);
    },
    async encode(event: ChangeEvent): Promise<ProducedRecord[]> {
      const failure = checked?.event === event ? checked.failure : checks.inspect(event);
      checked = null;
      // Taken before any await: another change's checks may run meanwhile. Not counted when the encoding fails: the change
      // is checked again when it is encoded again (a halted table released, capture reconnecting), and counted then.
      const failures = checks.takeFailures();
      if (failure === null) return counted(await inner.encode(event), failures);
      if (!created) {
        await createTopic();
        created = true;
      }
      if (!sealer) return counted(deadLetter(event, failure), failures);
      const sealed = await sealer.seal(event);
      return counted(deadLetter(sealed.event, failure, sealed.headers), failures);
    },
  };
}
