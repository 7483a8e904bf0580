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
 */
import type { ChangeEvent, ColumnValue, Row } from "../../connectors/contracts.ts";
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
function columnsToSeal(event: ChangeEvent, personal: PersonalTable, transformed: readonly string[]): string[] {
  const { key, columns } = event.schema;
  const sealable = (name: string) => !key.includes(name) && name !== personal.subject;
  if (absentColumns([...personal.columns, personal.subject, ...transformed], columns).length > 0) return columns.map((column) => column.name).filter(sealable);
  return [...personal.columns, ...transformed].filter(sealable);
}

function hasSubjectColumn(event: ChangeEvent, personal: PersonalTable): boolean {
  return event.schema.columns.some((column) => column.name === personal.subject);
}

/**
 * Whose parking key seals the values of a table whose subject column is not a column of it (renamed at the source): no row
 * names its subject, and nulling them, as for a row with no subject, would lose them at the release. Not a value a subject
 * column can hold (a NUL first).
 */
function tableStandIn(table: string): string {
  return `\u0000table ${table}`;
}

export class ParkedPersonalData implements ParkedChangeSealer {
  private readonly source: string;
  private readonly tables: ReadonlyMap<string, PersonalTable>;
  /** Per table with personal columns: its transformed columns, sealed with them. */
  private readonly transformed: ReadonlyMap<string, readonly string[]>;
  private readonly keys: () => Promise<SubjectKeyStore>;

  constructor(source: Pick<SourceConfig, "name" | "governance">, keys: () => Promise<SubjectKeyStore>) {
    this.source = source.name;
    this.tables = personalTables(source);
    this.transformed = new Map([...this.tables.keys()].map((table) => [table, Object.keys(source.governance?.tables[table]?.transforms ?? {})]));
    this.keys = keys;
  }

  get active(): boolean {
    return this.tables.size > 0;
  }

  /**
   * Makes the keys the sealing of `events` needs ready in one durable write for the new subjects
   * (and one more for the parking keys of subjects whose key cannot be used), not one each.
   */
  async prepare(events: readonly ChangeEvent[]): Promise<void> {
    const subjects = new Set<string>();
    const standIns = new Set<string>();
    for (const event of events) {
      const personal = this.tables.get(tableName(event.schema));
      if (!personal) continue;
      const columns = columnsToSeal(event, personal, this.transformed.get(tableName(event.schema)) ?? []);
      const subjectColumn = hasSubjectColumn(event, personal);
      for (const [row, other] of [[event.before, event.after], [event.after, event.before]] as const) {
        if (row === null || !columns.some((column) => present(row[column]))) continue;
        if (!subjectColumn) {
          standIns.add(tableStandIn(tableName(event.schema)));
          continue;
        }
        const subject = subjectOf(row, personal.subject) ?? subjectOf(other, personal.subject);
        if (subject !== null) subjects.add(subject);
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

  /** The change with its personal values sealed (or nulled), and the headers its records carry. */
  async seal(event: ChangeEvent): Promise<{ readonly event: ChangeEvent; readonly headers: Record<string, Uint8Array> }> {
    const table = tableName(event.schema);
    const personal = this.tables.get(table);
    if (!personal) return { event, headers: {} };
    // The key stays in clear everywhere (a table whose key column is personal is halted for it).
    const columns = columnsToSeal(event, personal, this.transformed.get(tableName(event.schema)) ?? []);
    const subjectColumn = hasSubjectColumn(event, personal);
    const sealed = new Set<string>();
    const nulled = new Map<string, string>();
    const parked = new Map<string, string>();
    const image = async (row: Row | null, other: Row | null): Promise<Row | null> => {
      if (row === null || !columns.some((column) => present(row[column]))) return row;
      const out: Record<string, ColumnValue> = { ...row };
      const subject = subjectColumn ? (subjectOf(row, personal.subject) ?? subjectOf(other, personal.subject)) : tableStandIn(table);
      let key: Buffer | null = null;
      let parkingWhy: string | null = null;
      if (!subjectColumn) {
        key = await (await this.keys()).keyFor(parkingKeySource(this.source), subject!);
        parkingWhy = `the subject column ${personal.subject} is not a column of the table (renamed at the source?): sealed with the table's parking key, which sluice forget does not reach`;
      } else if (subject !== null) {
        const store = await this.keys();
        try {
          key = await store.keyFor(this.source, subject);
        } catch (error) {
          // Not one that cannot be unwrapped (a master key not given): the log unavailable, failed as capture fails and tried again.
          if (!keyInvalid(error)) throw error;
          // Never null for it: the values are the subject's until it is forgotten, and the fix (the master key given back) loses nothing.
          key = await store.keyFor(parkingKeySource(this.source), subject);
          parkingWhy = `the subject's key cannot be used: ${error.message}`;
        }
      }
      const values: Record<string, string> = {};
      let sealedIn: string | null = null;
      for (const column of columns) {
        const value = row[column];
        if (!present(value)) continue;
        if (key === null) {
          // A column not configured personal (transformed, or sealed because a personal one is absent): kept as captured, never lost.
          if (!personal.columns.includes(column)) continue;
          out[column] = null;
          nulled.set(column, `the row has no subject (${personal.subject} is null)`);
          continue;
        }
        values[column] = serializeValue(value);
        sealed.add(column);
        if (parkingWhy !== null) parked.set(column, parkingWhy);
        if (sealedIn === null) sealedIn = column;
        else out[column] = referenceTo(sealedIn);
      }
      if (sealedIn !== null) out[sealedIn] = sealJson(JSON.stringify(values), key!, table, subject!);
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
      headers[PARKING_KEY_HEADER] = Buffer.from(
        [...parked].map(([column, why]) => `${column}: ${why}`).join("; ").slice(0, 400) + " (sealed with the subject's parking key; opened on release while the subject is not forgotten)",
      );
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
