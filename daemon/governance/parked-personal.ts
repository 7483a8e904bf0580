/**
 * Personal values of changes that capture writes outside the data topics, as JSON of the change
 * as captured: the parking topic of halted tables (`<deployment>.sluice.halted.<source>`) and a
 * data check's dead-letter topic (`<deployment>.dlq.<source>`). They are sealed with their data
 * subject's key, in the same AES-256-GCM envelope as the data topics (subject-keys.ts sealJson), so
 * `sluice forget` reaches them too: once the key is destroyed, a release (`sluice halted
 * retry|skip --source`) re-publishes those columns as null, like a replay of the data topics.
 *
 * Unlike the data topics, a parked change goes back through capture (transforms, checks, then the
 * data topics' own encryption), so the values are sealed in their lossless form (event-json.ts:
 * numbers, bytes and dates keep their type) and opened again as they were captured. A value of a
 * row with no subject is not written at all: it is null, and the record's `sluice.personal.nulled`
 * header says which columns and why. A subject whose key cannot be used (wrapped by a master key
 * this process was not given: GOVERNANCE_KEY_INVALID, which halts the table) has its values sealed
 * with its parking key instead (subject-keys.ts parkingKeySource: wrapped by the current master
 * key, destroyed with the subject's key by `sluice forget`), header `sluice.personal.parking-key`:
 * nothing is lost once the master key is given back, and a forget still reaches them.
 *
 * A transformed column is sealed too (a transform is there to keep a value out of the topics: out of these ones as well), and
 * the release opens it so that the transform applies as at capture. Where no subject's key can seal it (a table without
 * personal columns, a row with no subject, a subject column renamed away) it is sealed with the table's parking key: a stand-in
 * subject of the parking key source that no subject column can hold, so `sluice forget --subject` never reaches it.
 */
import type { ChangeEvent, ColumnValue, Row, TableSchema } from "../../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../../connectors/contracts.ts";
import type { SourceConfig } from "../../config/schema.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { deserializeValue, serializeValue } from "../event-json.ts";
import { SEALED_PERSONAL_HEADER } from "../capture.ts";
import type { ParkedChangeSealer } from "../capture.ts";
import { absentColumns } from "./absent-columns.ts";
import { personalTables } from "./personal-data.ts";
import type { PersonalTable } from "./personal-data.ts";
import { dataKeyId, encryptedBy, isEncrypted, isSealed, openValues, parkingKeySource, referenceTo, sealJson } from "./subject-keys.ts";
import type { SubjectKeyStore } from "./subject-keys.ts";
import { valueText } from "./transforms.ts";
import type { Logger } from "../../runtime/logger.ts";

/** The columns whose values a record holds sealed (JSON array): only those are opened on read. Capture reads it too (a sealed record with no sealer halts). */
export const SEALED_HEADER = SEALED_PERSONAL_HEADER;
/** The personal columns written as null because no key could seal them, and why (text). */
export const NULLED_HEADER = "sluice.personal.nulled";
/** On a record whose values of some subject are sealed with its parking key: which columns and why (text). */
export const PARKING_KEY_HEADER = "sluice.personal.parking-key";

function keyInvalid(error: unknown): error is SluiceError {
  return error instanceof SluiceError && error.code === "GOVERNANCE_KEY_INVALID";
}

function present(value: ColumnValue | undefined): value is Exclude<ColumnValue, null | typeof UNCHANGED> {
  return value !== undefined && value !== null && value !== UNCHANGED;
}

function subjectOf(row: Row | null, column: string): string | null {
  const value = row?.[column];
  return present(value) ? valueText(value) : null;
}

/**
 * The columns of a change to seal: its personal and transformed ones (a transform keeps a column's value out of the topics: out of
 * this one too) but the key and the subject; and when one of those or the subject is not a column of the table (renamed at the
 * source, or misspelt in the config: the table halts for it, absent-columns.ts), every column but the key and the subject, since
 * the data may be under any other name now.
 */
function columnsToSeal(schema: TableSchema, personal: PersonalTable | undefined, transformed: readonly string[]): string[] {
  const { key, columns } = schema;
  const subject = personal?.subject;
  const named = [...(personal?.columns ?? []), ...transformed];
  const sealable = (name: string) => !key.includes(name) && name !== subject;
  if (absentColumns(subject === undefined ? named : [...named, subject], columns).length > 0) return columns.map((column) => column.name).filter(sealable);
  return named.filter(sealable);
}

/**
 * What of a table's changes is sealed, worked out once per table schema (in `prepare`, then used by `seal`): the table, its
 * personal columns, the columns to seal (columnsToSeal), and whether the subject column is a column of the table.
 */
interface Sealing {
  readonly table: string;
  readonly personal: PersonalTable | undefined;
  readonly columns: readonly string[];
  readonly hasSubjectColumn: boolean;
}

/**
 * The stand-in subject whose parking key seals the values of a table that no subject's key can seal: a table without personal
 * columns (its transformed columns), a row with no subject, a subject column renamed at the source (no row names its subject,
 * and nulling the values, as for a row with no subject, would lose them at the release). Not a value a subject column can hold
 * (a NUL first), nor one `sluice forget --subject` can be given.
 */
export function tableStandIn(table: string): string {
  return `\u0000table ${table}`;
}

/** Whether `subject` is a table's stand-in (tableStandIn), not a data subject. */
export function isTableStandIn(subject: string): boolean {
  return subject.startsWith("\u0000table ");
}

/** Why a row image is sealed with its table's parking key (null: with its subject's key). */
function tableKeyReason({ personal, hasSubjectColumn }: Sealing, subject: string | null): string | null {
  if (personal === undefined) return "the table has no personal columns, so no subject's key: sealed with the table's parking key";
  if (!hasSubjectColumn) return `the subject column ${personal.subject} is not a column of the table (renamed at the source?): sealed with the table's parking key, which sluice forget does not reach`;
  if (subject === null) return `the row has no subject (${personal.subject} is null): sealed with the table's parking key`;
  return null;
}

/**
 * Without `personal_data` there is no master key, so no key to seal with: a source with transforms then parks and dead-letters
 * its transformed columns as captured, in clear. Said at start, naming the tables, so it is not found in the topics later.
 */
export function warnTransformsUnsealed(source: Pick<SourceConfig, "name" | "governance">, logger: Logger): void {
  const tables = Object.entries(source.governance?.tables ?? {})
    .filter(([, rules]) => Object.keys(rules.transforms ?? {}).length > 0)
    .map(([table]) => table);
  if (tables.length === 0) return;
  logger.warn(
    { tables },
    `source ${source.name}: personal_data is not set, so the changes of ${tables.join(", ")} that are parked (a halted table) or dead-lettered (a data check) hold their transformed columns as captured, in clear, in the parking and dead-letter topics; set personal_data.master_key_file (docs/governance.md) to have them sealed there`,
  );
}

export class ParkedPersonalData implements ParkedChangeSealer {
  private readonly source: string;
  private readonly tables: ReadonlyMap<string, PersonalTable>;
  /** Per table with transforms: its transformed columns, sealed with its personal ones or with the table's parking key. */
  private readonly transformed: ReadonlyMap<string, readonly string[]>;
  private readonly keys: () => Promise<SubjectKeyStore>;
  /** Per table schema (a schema is not changed once made: a table's new layout is a new one): its sealing, null when nothing is sealed. */
  private readonly sealings = new WeakMap<TableSchema, Sealing | null>();

  constructor(source: Pick<SourceConfig, "name" | "governance">, keys: () => Promise<SubjectKeyStore>) {
    this.source = source.name;
    this.tables = personalTables(source);
    this.transformed = new Map(
      Object.entries(source.governance?.tables ?? {})
        .map(([table, rules]) => [table, Object.keys(rules.transforms ?? {})] as const)
        .filter(([, columns]) => columns.length > 0),
    );
    this.keys = keys;
  }

  get active(): boolean {
    return this.tables.size > 0 || this.transformed.size > 0;
  }

  /** What of a change is sealed: null when nothing is (a table with neither personal nor transformed columns). */
  private sealingOf(event: ChangeEvent): Sealing | null {
    const known = this.sealings.get(event.schema);
    if (known !== undefined) return known;
    const table = tableName(event.schema);
    const personal = this.tables.get(table);
    const transformed = this.transformed.get(table) ?? [];
    const sealing =
      personal === undefined && transformed.length === 0
        ? null
        : { table, personal, columns: columnsToSeal(event.schema, personal, transformed), hasSubjectColumn: personal !== undefined && event.schema.columns.some((column) => column.name === personal.subject) };
    this.sealings.set(event.schema, sealing);
    return sealing;
  }

  /** The subject of a row image (the other image's when it has none), or null: none, or the table has no subject column. */
  private static subjectOf({ personal, hasSubjectColumn }: Sealing, row: Row, other: Row | null): string | null {
    if (personal === undefined || !hasSubjectColumn) return null;
    return subjectOf(row, personal.subject) ?? subjectOf(other, personal.subject);
  }

  /**
   * Makes the keys the sealing of `events` needs ready in one durable write for the new subjects
   * (and one more for the parking keys: of subjects whose key cannot be used, and of tables whose
   * values no subject's key seals), not one each.
   */
  async prepare(events: readonly ChangeEvent[]): Promise<void> {
    const subjects = new Set<string>();
    const standIns = new Set<string>();
    for (const event of events) {
      const sealing = this.sealingOf(event);
      if (sealing === null) continue;
      const { table, personal, columns } = sealing;
      for (const [row, other] of [[event.before, event.after], [event.after, event.before]] as const) {
        if (row === null || !columns.some((column) => present(row[column]))) continue;
        const subject = ParkedPersonalData.subjectOf(sealing, row, other);
        if (subject !== null) subjects.add(subject);
        // A row with no subject has its personal columns nulled: the table's key only for the others.
        else if (personal === undefined || !sealing.hasSubjectColumn || columns.some((column) => !personal.columns.includes(column) && present(row[column]))) standIns.add(tableStandIn(table));
      }
    }
    if (subjects.size === 0 && standIns.size === 0) return;
    const store = await this.keys();
    await store.createKeys(this.source, [...subjects]);
    const unusable: string[] = [];
    for (const subject of subjects) {
      if (store.cachedKey(this.source, subject) !== undefined) continue;
      try {
        await store.keyIfKnown(this.source, subject);
      } catch (error) {
        if (!keyInvalid(error)) throw error;
        unusable.push(subject);
      }
    }
    if (unusable.length > 0 || standIns.size > 0) await store.createKeys(parkingKeySource(this.source), [...unusable, ...standIns]);
  }

  /**
   * The change with its personal and transformed values sealed (or, a row's personal values with no subject, nulled), and the
   * headers its records carry. A key is stored durably (createKeys) before any value sealed with it is returned.
   */
  async seal(event: ChangeEvent): Promise<{ readonly event: ChangeEvent; readonly headers: Record<string, Uint8Array> }> {
    const sealing = this.sealingOf(event);
    if (sealing === null) return { event, headers: {} };
    // The key stays in clear everywhere (a table whose key column is personal or transformed is halted for it).
    const { table, personal, columns } = sealing;
    const sealed = new Set<string>();
    const nulled = new Map<string, string>();
    const parked = new Map<string, string>();
    let tableKeyUsed = false;
    let subjectParkingKeyUsed = false;
    const image = async (row: Row | null, other: Row | null): Promise<Row | null> => {
      if (row === null || !columns.some((column) => present(row[column]))) return row;
      const out: Record<string, ColumnValue> = { ...row };
      const subject = ParkedPersonalData.subjectOf(sealing, row, other);
      const tableWhy = tableKeyReason(sealing, subject);
      const store = await this.keys();
      const sealedAs = tableWhy !== null ? tableStandIn(table) : subject!;
      let parkingWhy = tableWhy;
      let key: Buffer;
      // A row with no subject: its personal values are nulled (as in the data topics); only the others need the table's key.
      const rowWithoutSubject = personal !== undefined && subject === null && sealing.hasSubjectColumn;
      const values: Record<string, string> = {};
      let sealedIn: string | null = null;
      for (const column of columns) {
        const value = row[column];
        if (!present(value)) continue;
        if (rowWithoutSubject && personal.columns.includes(column)) {
          out[column] = null;
          nulled.set(column, `the row has no subject (${personal.subject} is null)`);
          continue;
        }
        values[column] = serializeValue(value);
        sealed.add(column);
        if (sealedIn === null) sealedIn = column;
        else out[column] = referenceTo(sealedIn);
      }
      if (sealedIn === null) return out;
      if (tableWhy !== null) {
        key = await store.keyFor(parkingKeySource(this.source), sealedAs);
        tableKeyUsed = true;
      } else {
        try {
          key = await store.keyFor(this.source, sealedAs);
        } catch (error) {
          // Not one that cannot be unwrapped (a master key not given): the log unavailable, failed as capture fails and tried again.
          if (!keyInvalid(error)) throw error;
          // Never null for it: the values are the subject's until it is forgotten, and the fix (the master key given back) loses nothing.
          key = await store.keyFor(parkingKeySource(this.source), sealedAs);
          parkingWhy = `the subject's key cannot be used: ${error.message}`;
          subjectParkingKeyUsed = true;
        }
      }
      if (parkingWhy !== null) for (const column of Object.keys(values)) parked.set(column, parkingWhy);
      out[sealedIn] = sealJson(JSON.stringify(values), key, table, sealedAs);
      return out;
    };
    const before = await image(event.before, event.after);
    const after = await image(event.after, event.before);
    const headers: Record<string, Uint8Array> = {};
    if (sealed.size > 0) headers[SEALED_HEADER] = Buffer.from(JSON.stringify([...sealed]));
    if (nulled.size > 0) {
      headers[NULLED_HEADER] = Buffer.from(
        [...nulled].map(([column, why]) => `${column}: ${why}`).join("; ").slice(0, 400) + " (personal values with no key to seal them are not written)",
      );
    }
    if (parked.size > 0) {
      const which = [
        ...(subjectParkingKeyUsed ? ["the subject's parking key: opened on release while the subject is not forgotten"] : []),
        ...(tableKeyUsed ? ["the table's parking key, no data subject's: opened on release, sluice forget does not reach it"] : []),
      ];
      headers[PARKING_KEY_HEADER] = Buffer.from([...parked].map(([column, why]) => `${column}: ${why}`).join("; ").slice(0, 400) + ` (sealed with ${which.join("; ")})`);
    }
    return { event: before === event.before && after === event.after ? event : { ...event, before, after }, headers };
  }

  /**
   * The change with its sealed values opened as they were captured; a value whose key is gone
   * (`sluice forget`) is null. A record without SEALED_HEADER (an earlier version's, or one with
   * nothing sealed) is returned as it is. Opening needs no config: the columns are in the header,
   * the subject in the sealed value.
   */
  async open(event: ChangeEvent, headers: Readonly<Record<string, Uint8Array>> | undefined): Promise<ChangeEvent> {
    const header = headers?.[SEALED_HEADER];
    if (header === undefined) return event;
    const columns = JSON.parse(Buffer.from(header).toString()) as string[];
    const table = tableName(event.schema);
    const parkingKey = headers?.[PARKING_KEY_HEADER] !== undefined;
    const image = async (row: Row | null): Promise<Row | null> => {
      if (row === null) return null;
      const sealed = columns.map((column) => row[column]).find(isSealed);
      if (sealed === undefined) return row;
      const opened = await this.opened(sealed, table, parkingKey);
      const out: Record<string, ColumnValue> = { ...row };
      for (const column of columns) {
        if (!isEncrypted(row[column])) continue;
        out[column] = opened !== null && Object.hasOwn(opened, column) ? (deserializeValue(opened[column]!) as ColumnValue) : null;
      }
      return out;
    };
    return { ...event, before: await image(event.before), after: await image(event.after) };
  }

  /** Reads the key topic to its end, so a key destroyed elsewhere is not used by the opens that follow. */
  async refresh(): Promise<void> {
    await (await this.keys()).catchUp();
  }

  /**
   * The values sealed in `text`, or null when their key is gone (or is another one now: the subject
   * was forgotten, then got a new key). With `parkingKey`, the subject's parking key is tried first
   * (a value sealed while its own key could not be used), and only while the subject's key is not
   * destroyed (a forget by a version that left the parking key).
   */
  private async opened(text: string, table: string, parkingKey: boolean): Promise<Record<string, string> | null> {
    const by = encryptedBy(text);
    if (by === null) return null;
    const store = await this.keys();
    if (parkingKey) {
      if (store.wasDestroyed(this.source, by.subject)) return null;
      const key = await store.keyIfKnown(parkingKeySource(this.source), by.subject);
      if (key !== null && dataKeyId(key).toString("hex") === by.keyId) return this.openWith(text, key, table);
    }
    const key = await store.keyIfKnown(this.source, by.subject);
    if (key === null || dataKeyId(key).toString("hex") !== by.keyId) return null;
    return this.openWith(text, key, table);
  }

  private openWith(text: string, key: Buffer, table: string): Record<string, string> | null {
    try {
      return openValues(text, key, table);
    } catch {
      return null;
    }
  }
}
