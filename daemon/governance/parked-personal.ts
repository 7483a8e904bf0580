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
 * numbers, bytes and dates keep their type) and opened again as they were captured. A value with
 * no key to seal it (the row has no subject; the subject's key cannot be had, e.g. wrapped by a
 * master key this process was not given) is not written at all: it is null, and the record's
 * `sluice.personal.nulled` header says which columns and why.
 */
import type { ChangeEvent, ColumnValue, Row } from "../../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../../connectors/contracts.ts";
import type { SourceConfig } from "../../config/schema.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { deserializeValue, serializeValue } from "../event-json.ts";
import type { ParkedChangeSealer } from "../capture.ts";
import { personalTables } from "./personal-data.ts";
import type { PersonalTable } from "./personal-data.ts";
import { dataKeyId, encryptedBy, isEncrypted, isSealed, openValues, referenceTo, sealJson } from "./subject-keys.ts";
import type { SubjectKeyStore } from "./subject-keys.ts";
import { valueText } from "./transforms.ts";

/** The columns whose values a record holds sealed (JSON array): only those are opened on read. */
export const SEALED_HEADER = "sluice.personal.sealed";
/** The personal columns written as null because no key could seal them, and why (text). */
export const NULLED_HEADER = "sluice.personal.nulled";

function present(value: ColumnValue | undefined): value is Exclude<ColumnValue, null | typeof UNCHANGED> {
  return value !== undefined && value !== null && value !== UNCHANGED;
}

function subjectOf(row: Row | null, column: string): string | null {
  const value = row?.[column];
  return present(value) ? valueText(value) : null;
}

export class ParkedPersonalData implements ParkedChangeSealer {
  private readonly source: string;
  private readonly tables: ReadonlyMap<string, PersonalTable>;
  private readonly keys: () => Promise<SubjectKeyStore>;

  constructor(source: Pick<SourceConfig, "name" | "governance">, keys: () => Promise<SubjectKeyStore>) {
    this.source = source.name;
    this.tables = personalTables(source);
    this.keys = keys;
  }

  get active(): boolean {
    return this.tables.size > 0;
  }

  /** The change with its personal values sealed (or nulled), and the headers its records carry. */
  async seal(event: ChangeEvent): Promise<{ readonly event: ChangeEvent; readonly headers: Record<string, Uint8Array> }> {
    const table = tableName(event.schema);
    const personal = this.tables.get(table);
    if (!personal) return { event, headers: {} };
    // The key stays in clear everywhere (a table whose key column is personal is halted for it).
    const columns = personal.columns.filter((column) => !event.schema.key.includes(column));
    const sealed = new Set<string>();
    const nulled = new Map<string, string>();
    const image = async (row: Row | null, other: Row | null): Promise<Row | null> => {
      if (row === null || !columns.some((column) => present(row[column]))) return row;
      const out: Record<string, ColumnValue> = { ...row };
      const subject = subjectOf(row, personal.subject) ?? subjectOf(other, personal.subject);
      let why: string | null = subject === null ? `the row has no subject (${personal.subject} is null)` : null;
      let key: Buffer | null = null;
      if (subject !== null) {
        try {
          key = await (await this.keys()).keyFor(this.source, subject);
        } catch (error) {
          // Not one that cannot be unwrapped (a master key not given): the log unavailable, failed as capture fails and tried again.
          if (!(error instanceof SluiceError) || error.code !== "GOVERNANCE_KEY_INVALID") throw error;
          why = `the subject's key cannot be used: ${error.message}`;
        }
      }
      const values: Record<string, string> = {};
      let sealedIn: string | null = null;
      for (const column of columns) {
        const value = row[column];
        if (!present(value)) continue;
        if (key === null) {
          out[column] = null;
          nulled.set(column, why!);
          continue;
        }
        values[column] = serializeValue(value);
        sealed.add(column);
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
    const image = async (row: Row | null): Promise<Row | null> => {
      if (row === null) return null;
      const sealed = columns.map((column) => row[column]).find(isSealed);
      if (sealed === undefined) return row;
      const opened = await this.opened(sealed, table);
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

  /** The values sealed in `text`, or null when their key is gone (or is another one now: the subject was forgotten, then got a new key). */
  private async opened(text: string, table: string): Promise<Record<string, string> | null> {
    const by = encryptedBy(text);
    if (by === null) return null;
    const key = await (await this.keys()).keyIfKnown(this.source, by.subject);
    if (key === null || dataKeyId(key).toString("hex") !== by.keyId) return null;
    try {
      return openValues(text, key, table);
    } catch {
      return null;
    }
  }
}
