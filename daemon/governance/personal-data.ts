/**
 * Erasable personal data (config `sources[].governance.tables.<table>.personal`, docs/governance.md):
 * at capture each personal column's value is encrypted with its data subject's key
 * (subject-keys.ts) before it is encoded, so the topics and the registry only ever hold ciphertext
 * (the column is text in the registered schema); sinks decrypt on apply. Once `sluice forget`
 * destroyed a subject's key, its values decrypt to null, in every replay and rebuild.
 */
import type { ChangeEvent, ColumnSchema, ColumnValue, Row, TableSchema } from "../../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { logicalType } from "../../connectors/sinks/logical-type.ts";
import { subjectTypeProblem, subjectTypeRefusal } from "../../connectors/sinks/subject-column.ts";
import type { TopicLog } from "../../connectors/contracts.ts";
import type { SluiceConfig, SourceConfig } from "../../config/schema.ts";
import { valueText } from "./transforms.ts";
import type { SealedPayloads, SealWorkers } from "./seal-workers.ts";
import { dataKeyId, decryptValue, encryptedBy, isEncrypted, isSealed, MasterKey, openValues, referenceTo, sealedHead, sealJson, SubjectKeyStore, subjectKeyTopic } from "./subject-keys.ts";
import type { SealHead } from "./subject-keys.ts";
import { absentColumns, absentGoverned } from "./absent-columns.ts";
import { markPersonalValues } from "../../connectors/sinks/personal-values.ts";

export interface PersonalTable {
  /** The column naming the data subject. */
  readonly subject: string;
  readonly columns: readonly string[];
}

/** The personal tables of a source, by "schema.table". */
export function personalTables(source: Pick<SourceConfig, "governance">): Map<string, PersonalTable> {
  const tables = new Map<string, PersonalTable>();
  for (const [table, rules] of Object.entries(source.governance?.tables ?? {})) if (rules.personal) tables.set(table, rules.personal);
  return tables;
}

/** The master key and the keys being rotated away from, read from their files. */
export function masterKeys(config: Pick<SluiceConfig, "personal_data">): { master: MasterKey; previous: MasterKey[] } {
  const settings = config.personal_data;
  if (!settings) {
    throw new SluiceError("personal columns need personal_data.master_key_file (the master key that wraps each subject's key)", {
      code: "GOVERNANCE_KEY_INVALID",
      context: { component: "governance" },
    });
  }
  return { master: MasterKey.fromFile(settings.master_key_file), previous: settings.previous_master_key_files.map((file) => MasterKey.fromFile(file)) };
}

/** Opens the deployment's subject key store on first use; a failed open (an outage) is tried again on the next use. */
export function lazyKeyStore(config: SluiceConfig, log: TopicLog, options: { create: boolean }): () => Promise<SubjectKeyStore> {
  const { master, previous } = masterKeys(config);
  let opening: Promise<SubjectKeyStore> | null = null;
  return () => {
    opening ??= SubjectKeyStore.open(log, subjectKeyTopic(config.name), master, { previous, create: options.create, cacheSize: config.personal_data?.key_cache_size }).catch((error: unknown) => {
      opening = null;
      throw error;
    });
    return opening;
  };
}

const sharedStores = new WeakMap<TopicLog, Map<string, () => Promise<SubjectKeyStore>>>();

/** One key store per topic log and deployment, for capture: every source and every leadership term of the process shares it (and its one consumer). */
export function sharedKeyStore(config: SluiceConfig, log: TopicLog): () => Promise<SubjectKeyStore> {
  let byTopic = sharedStores.get(log);
  if (!byTopic) {
    byTopic = new Map();
    sharedStores.set(log, byTopic);
  }
  const topic = subjectKeyTopic(config.name);
  let open = byTopic.get(topic);
  if (!open) {
    open = lazyKeyStore(config, log, { create: true });
    byTopic.set(topic, open);
  }
  return open;
}

/** The authenticated context of a personal value: its table and column. */
function valueContext(schema: TableSchema, column: string): string {
  return `${tableName(schema)}.${column}`;
}

function subjectOf(row: Row | null, column: string): string | null {
  const value = row?.[column];
  return value === undefined || value === null || value === UNCHANGED ? null : valueText(value);
}

interface Shape {
  readonly schema: TableSchema;
  readonly personal: PersonalTable;
  /** "schema.table": the authenticated context of the row's sealed values. */
  readonly table: string;
  /**
   * Each personal column's name as JSON text followed by ":", the sealed values' JSON being written
   * from them; null when a column's name is an array index ("0", "12"), which JSON.stringify puts first.
   */
  readonly jsonNames: readonly string[] | null;
}

/**
 * How often capture and the sinks read the key topic again: capture, so a subject forgotten
 * elsewhere gets a new key when it changes again; a sink, so it stops decrypting a forgotten
 * subject's values even when `sluice forget` asked another process (sluice forget's second pass
 * waits for it).
 */
export const KEY_CATCH_UP_MS = 5_000;

/** Row images of a batch at least this many: sealed on the seal workers (fewer: a worker's round trip costs more than it saves). */
const SEAL_IN_WORKERS = 64;
/**
 * A batch's first row images that the main thread seals itself as it encodes them, while the
 * workers seal the rest: it starts encoding at once instead of waiting for the workers' first reply.
 */
const SEAL_ON_MAIN_FIRST = 128;
/**
 * Row images per request to the workers: the batch goes out in requests of this many, not awaited
 * by `prepare`, so the main thread encodes the changes of one request's rows while the workers seal
 * the next (with one request for the whole batch, it waited for all of them, then the workers idled
 * while it encoded).
 */
const SEAL_CHUNK = 512;

/**
 * What planImage leaves to seal for the row image it planned: the values (as sealValues writes
 * them: JSON of {column: value text}) and the column that holds them; `column` null when nothing is
 * to be sealed. One per caller, filled again by each plan: no object per row image.
 */
interface PlanSlot {
  column: string | null;
  json: string;
}

/** Whether JSON.stringify writes a property of this name before the others (an array index). */
function isArrayIndex(name: string): boolean {
  return /^(0|[1-9]\d*)$/.test(name) && Number(name) < 2 ** 32 - 1;
}

/**
 * A row image's personal values: sealed together in its first personal column present, the others
 * refer to it. Returns the row as published but for the sealed values (the row itself when it has
 * no personal value) and leaves what to seal, with `subject`'s key, in `slot`.
 */
function planImage(row: Row, shape: Shape, subject: string | null, slot: PlanSlot): Record<string, ColumnValue> {
  const columns = shape.personal.columns;
  slot.column = null;
  let out: Record<string, ColumnValue> | null = null;
  // The JSON text JSON.stringify gives the values object (the columns in their order), written directly: no object per row image.
  let json = "";
  const values: Record<string, string> | null = shape.jsonNames === null ? {} : null;
  let sealedIn: string | null = null;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column];
    if (value === undefined || value === null || value === UNCHANGED) continue;
    out ??= { ...row };
    // No subject, no key to erase it with: the value is not published at all.
    if (subject === null) {
      out[column] = null;
      continue;
    }
    if (values !== null) values[column] = valueText(value);
    else json += `${sealedIn === null ? "{" : ","}${shape.jsonNames![i]!}${JSON.stringify(valueText(value))}`;
    if (sealedIn === null) sealedIn = column;
    else out[column] = referenceTo(sealedIn);
  }
  if (out === null) return row as Record<string, ColumnValue>;
  if (sealedIn !== null) {
    slot.column = sealedIn;
    slot.json = values !== null ? JSON.stringify(values) : `${json}}`;
  }
  return out;
}

/**
 * What planImage leaves in `slot` for a row image with a subject, without the row as published:
 * capture keeps only the values' JSON for the workers, and makes the row when it encodes it
 * (publishedImage), so nothing but the sealed bytes waits in memory between the two.
 */
function planSeal(row: Row, shape: Shape, slot: PlanSlot): void {
  const columns = shape.personal.columns;
  slot.column = null;
  let json = "";
  const values: Record<string, string> | null = shape.jsonNames === null ? {} : null;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column];
    if (value === undefined || value === null || value === UNCHANGED) continue;
    if (values !== null) values[column] = valueText(value);
    else json += `${slot.column === null ? "{" : ","}${shape.jsonNames![i]!}${JSON.stringify(valueText(value))}`;
    slot.column ??= column;
  }
  if (slot.column !== null) slot.json = values !== null ? JSON.stringify(values) : `${json}}`;
}

/** The row image as published, its values sealed in `sealedIn` as `text` (planSeal's plan), the other personal columns with a value referring to it. */
function publishedImage(row: Row, shape: Shape, sealedIn: string, text: string): Row {
  const out: Record<string, ColumnValue> = { ...row };
  const columns = shape.personal.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column];
    if (value === undefined || value === null || value === UNCHANGED) continue;
    out[column] = column === sealedIn ? text : referenceTo(sealedIn);
  }
  return out;
}

/** One request of a batch's row images to the seal workers. */
interface SealRequestState {
  /** Settles when the workers replied or failed (never rejects). */
  readonly done: Promise<void>;
  /** The reply: the sealed text of each row image (null until then). */
  sealed: SealedPayloads | null;
  /** The workers failed: its row images are sealed on the main thread. */
  failed: boolean;
  /** Per row image: the column it is sealed in. */
  readonly columns: readonly string[];
}

/** A request to the seal workers being planned: its seals as parallel arrays (no object per row image). */
interface PlannedRequest {
  readonly keys: Buffer[];
  readonly jsons: string[];
  readonly heads: SealHead[];
  /** The column each row image is sealed in. */
  readonly columns: string[];
}

/** What sealInWorkers plans a batch's row images with. */
interface SealingBatch {
  readonly subjects: readonly string[];
  /** Each subject's key (null or absent: not found, its rows are left to `apply`). */
  readonly subjectKeys: readonly (Buffer | null | undefined)[];
  readonly heads: (SealHead | undefined)[];
  readonly headTables: (string | undefined)[];
  request: PlannedRequest;
}

/** A subject's place in `subjects` (added when new). */
function placeOf(subject: string, index: Map<string, number>, subjects: string[]): number {
  let place = index.get(subject);
  if (place === undefined) {
    place = subjects.length;
    index.set(subject, place);
    subjects.push(subject);
  }
  return place;
}

/** Capture's side: encrypts the personal columns of one source's events. */
export class PersonalDataEncryptor {
  private readonly source: string;
  private readonly tables: ReadonlyMap<string, PersonalTable>;
  private readonly keys: () => Promise<SubjectKeyStore>;
  private readonly shapes = new WeakMap<TableSchema, Shape | null>();
  private readonly workers: SealWorkers | null;
  /**
   * The row images of the batch being encoded, in order (`prepare` lists those of the events it
   * sends to the workers, and the others of those events), and where each is sealed: n for the
   * workers, its request being requests[floor(n / SEAL_CHUNK)] and place n % SEAL_CHUNK, -1 for the main
   * thread. Capture encodes the events in order, so a row image is found at `cursor` (or just
   * around it) with no Map per row image (a Map of the rows was the main thread's costliest lookup);
   * otherwise in `jobIndex`, made once per batch when first needed. Emptied by the next `prepare`.
   */
  private jobRows: Row[] = [];
  private jobWhere: number[] = [];
  private cursor = 0;
  private jobIndex: Map<Row, number> | null = null;
  private requests: SealRequestState[] = [];
  /** The shape of the last table schema met: a batch's events mostly share one. */
  private lastSchema: TableSchema | null = null;
  private lastShape: Shape | null = null;
  private store: SubjectKeyStore | null = null;
  private caughtUpAt = Date.now();
  /** planImage's slot for the plans made and used at once (not across an await). */
  private readonly slot: PlanSlot = { column: null, json: "" };

  constructor(source: Pick<SourceConfig, "name" | "governance">, keys: () => Promise<SubjectKeyStore>, workers: SealWorkers | null = null) {
    this.source = source.name;
    this.tables = personalTables(source);
    this.keys = keys;
    this.workers = workers;
  }

  get active(): boolean {
    return this.tables.size > 0;
  }

  /**
   * Makes the keys of every subject of `events` ready: those not in memory are read from the key
   * topic together, those without a key are created in one durable write before any value uses
   * them (one write per batch, not per new subject: a snapshot meets many). Then, for a batch of
   * at least SEAL_IN_WORKERS row images, sends all but the first SEAL_ON_MAIN_FIRST to the seal
   * workers and returns without waiting for them: `applyNow` takes the sealed rows of these very
   * events (capture passes the same, transformed, events to both) once back, `apply` waits for
   * those still on their way, and either seals any other row itself.
   */
  async prepare(events: readonly ChangeEvent[]): Promise<void> {
    if (!this.active) return;
    this.jobRows = [];
    this.jobWhere = [];
    this.cursor = 0;
    this.jobIndex = null;
    this.requests = [];
    const store = await this.keys();
    this.store = store;
    if (Date.now() - this.caughtUpAt >= KEY_CATCH_UP_MS) {
      await store.catchUp();
      this.caughtUpAt = Date.now();
    }
    const { subjects, imageSubjects, images } = this.subjectsOf(events);
    if (subjects.length > 0) await store.createKeys(this.source, subjects);
    if (images < SEAL_IN_WORKERS || this.workers === null) return;
    // Each subject's key, in memory after createKeys unless the cache is smaller than the batch's subjects.
    const keys = new Array<Buffer | null>(subjects.length);
    try {
      for (let s = 0; s < subjects.length; s++) keys[s] = this.cachedKey(subjects[s]!) ?? (await store.keyFor(this.source, subjects[s]!));
    } catch {
      // A key that cannot be unwrapped: its rows (and those after it) are sealed by `apply`, which reports it for their events.
    }
    this.sealInWorkers(events, imageSubjects, subjects, keys);
  }

  /**
   * Each row image's own subject, computed once per batch: `subjects` the distinct ones, and at
   * imageSubjects[2 × event + (0 before, 1 after)] 1 + the subject's place there, 0 for none.
   * Kept out of the async `prepare` (and the loop of sealInWorkers without an await), so the
   * compilers optimise them once (they were compiled again and again).
   */
  private subjectsOf(events: readonly ChangeEvent[]): { subjects: string[]; imageSubjects: Int32Array; images: number } {
    const subjects: string[] = [];
    const index = new Map<string, number>();
    const imageSubjects = new Int32Array(2 * events.length);
    let images = 0;
    let lastSchema: TableSchema | null = null;
    let personal: PersonalTable | undefined;
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      if (event.schema !== lastSchema) {
        lastSchema = event.schema;
        personal = this.tables.get(tableName(event.schema));
      }
      if (!personal) continue;
      // No inner loop over the two images: an optimised inner loop was left (a deoptimisation) at every event.
      const before = subjectOf(event.before, personal.subject);
      if (before !== null) {
        imageSubjects[2 * i] = 1 + placeOf(before, index, subjects);
        images += 1;
      }
      const after = subjectOf(event.after, personal.subject);
      if (after !== null) {
        imageSubjects[2 * i + 1] = 1 + placeOf(after, index, subjects);
        images += 1;
      }
    }
    return { subjects, imageSubjects, images };
  }

  /** The event as published: personal values encrypted (text), their columns text and nullable in the schema. */
  async apply(event: ChangeEvent): Promise<ChangeEvent> {
    const beforeJob = event.before === null ? -1 : this.jobOf(event.before);
    if (beforeJob >= 0) await this.requests[Math.floor(beforeJob / SEAL_CHUNK)]!.done;
    const afterJob = event.after === null ? -1 : this.jobOf(event.after);
    if (afterJob >= 0) await this.requests[Math.floor(afterJob / SEAL_CHUNK)]!.done;
    const now = this.applyNow(event);
    if (now !== undefined) return now;
    const shape = this.shapeOf(event.schema)!;
    const beforeImage = this.image(event, 0, shape);
    const afterImage = this.image(event, 1, shape);
    return { ...event, schema: shape.schema, before: beforeImage instanceof Promise ? await beforeImage : beforeImage, after: afterImage instanceof Promise ? await afterImage : afterImage };
  }

  /**
   * What `apply` gives, without a promise, when every row image's seal is ready (sealed by the
   * workers after `prepare`) or its key is in memory, as after `prepare`; undefined otherwise (a
   * key to read, or a row image still on the workers: `apply` waits for it).
   */
  applyNow(event: ChangeEvent): ChangeEvent | undefined {
    const shape = this.shapeOf(event.schema);
    if (shape === null) return event;
    if (event.before === null && event.after === null) return { ...event, schema: shape.schema };
    const beforeImage = this.imageNow(event, 0, shape);
    if (beforeImage === undefined) return undefined;
    const afterImage = this.imageNow(event, 1, shape);
    if (afterImage === undefined) return undefined;
    return { ...event, schema: shape.schema, before: beforeImage, after: afterImage };
  }

  /** Where `prepare` left a row image of the batch (see jobRows): n on the workers, -1 for this thread. */
  private jobOf(row: Row): number {
    const rows = this.jobRows;
    if (rows.length === 0) return -1;
    const at = this.cursor;
    // Just behind the cursor too: apply looks an event's images up, then applyNow again.
    for (let j = at > 2 ? at - 2 : 0; j < at + 3 && j < rows.length; j++) {
      if (rows[j] === row) {
        this.cursor = j + 1;
        return this.jobWhere[j]!;
      }
    }
    if (this.jobIndex === null) {
      this.jobIndex = new Map();
      for (let j = 0; j < rows.length; j++) this.jobIndex.set(rows[j]!, j);
    }
    const j = this.jobIndex.get(row);
    if (j === undefined) return -1;
    this.cursor = j + 1;
    return this.jobWhere[j]!;
  }

  /** The subject whose key seals a row image (0 before, 1 after): its own, or the other image's. */
  private subjectFor(event: ChangeEvent, image: 0 | 1, shape: Shape): string | null {
    const column = shape.personal.subject;
    return image === 0 ? (subjectOf(event.before, column) ?? subjectOf(event.after, column)) : (subjectOf(event.after, column) ?? subjectOf(event.before, column));
  }

  /** The row image (0 before, 1 after) as published when its seal is back from the workers or its key in memory; undefined when its key must be read first, or its seal is on the workers. */
  private imageNow(event: ChangeEvent, image: 0 | 1, shape: Shape): Row | null | undefined {
    const row = image === 0 ? event.before : event.after;
    if (row === null) return null;
    const job = this.jobOf(row);
    if (job >= 0) {
      const request = this.requests[Math.floor(job / SEAL_CHUNK)]!;
      const sealed = request.sealed;
      if (sealed !== null) {
        const i = job % SEAL_CHUNK;
        // Made as it is encoded (young garbage), not when the reply came; its sealed text is a slice of the reply's one string.
        return publishedImage(row, shape, request.columns[i]!, sealed.texts.slice(i === 0 ? 0 : sealed.ends[i - 1]!, sealed.ends[i]!));
      }
      if (!request.failed) return undefined;
    }
    const subject = this.subjectFor(event, image, shape);
    const slot = this.slot;
    const out = planImage(row, shape, subject, slot);
    if (slot.column === null) return out;
    const key = this.cachedKey(subject!);
    if (key === undefined) return undefined;
    out[slot.column] = sealJson(slot.json, key, shape.table, subject!);
    return out;
  }

  private image(event: ChangeEvent, image: 0 | 1, shape: Shape): Row | null | Promise<Row> {
    const now = this.imageNow(event, image, shape);
    if (now !== undefined) return now;
    const subject = this.subjectFor(event, image, shape);
    const slot: PlanSlot = { column: null, json: "" };
    const out = planImage((image === 0 ? event.before : event.after)!, shape, subject, slot);
    const column = slot.column!;
    return this.keys()
      .then((store) => store.keyFor(this.source, subject!))
      .then((dataKey) => {
        out[column] = sealJson(slot.json, dataKey, shape.table, subject!);
        return out;
      });
  }

  /** The subject's key when it is in memory: no promise per row for the common case. */
  private cachedKey(subject: string): Buffer | undefined {
    return this.store?.cachedKey(this.source, subject);
  }

  /**
   * Plans the batch's row images but the first SEAL_ON_MAIN_FIRST (left to `applyNow`) and sends
   * them to the workers in requests of SEAL_CHUNK, in order. Lists every row image of the batch's
   * personal tables in jobRows, with where it is sealed. `imageSubjects` and `subjects`: each row
   * image's own subject, from subjectsOf; `keys`: each subject's key (null: not found, its rows are
   * left to `apply`).
   */
  private sealInWorkers(events: readonly ChangeEvent[], imageSubjects: Int32Array, subjects: readonly string[], subjectKeys: readonly (Buffer | null | undefined)[]): void {
    const batch: SealingBatch = {
      subjects,
      subjectKeys,
      // Each subject's seal head looked up once per batch (and table), by its place in `subjects`.
      heads: new Array<SealHead | undefined>(subjects.length),
      headTables: new Array<string | undefined>(subjects.length),
      request: { keys: [], jsons: [], heads: [], columns: [] },
    };
    let onMain = SEAL_ON_MAIN_FIRST;
    try {
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!;
        const shape = this.shapeOf(event.schema);
        if (shape === null) continue;
        // Its own subject, else the other image's; the first row images (counted by event) on this thread.
        const before = imageSubjects[2 * i]!;
        const after = imageSubjects[2 * i + 1]!;
        if (event.before !== null) this.planJob(event.before, onMain > 0 ? -1 : (before || after) - 1, shape, batch);
        if (event.after !== null) this.planJob(event.after, onMain > 0 ? -1 : (after || before) - 1, shape, batch);
        if (onMain > 0) onMain -= (event.before === null ? 0 : 1) + (event.after === null ? 0 : 1);
      }
    } catch {
      // A table whose shape is refused: `apply` reports it for its event.
    }
    if (batch.request.jsons.length > 0) this.sendToWorkers(batch.request);
  }

  /** Lists a row image in jobRows: planned into the batch's next request (sent once full), or -1 (this thread) when `place` (its subject in `batch.subjects`) is -1, its subject's key is missing, or it has no personal value. */
  private planJob(row: Row, place: number, shape: Shape, batch: SealingBatch): void {
    const key = place < 0 ? null : batch.subjectKeys[place];
    const slot = this.slot;
    if (key !== null && key !== undefined) planSeal(row, shape, slot);
    else slot.column = null;
    this.jobRows.push(row);
    if (slot.column === null) {
      this.jobWhere.push(-1);
      return;
    }
    let head = batch.heads[place];
    if (head === undefined || batch.headTables[place] !== shape.table) {
      head = sealedHead(shape.table, batch.subjects[place]!);
      batch.heads[place] = head;
      batch.headTables[place] = shape.table;
    }
    const request = batch.request;
    // Every request but the last has SEAL_CHUNK row images: a job's number gives its request.
    this.jobWhere.push(this.requests.length * SEAL_CHUNK + request.jsons.length);
    request.keys.push(key!);
    request.jsons.push(slot.json);
    request.heads.push(head);
    request.columns.push(slot.column);
    if (request.jsons.length === SEAL_CHUNK) {
      this.sendToWorkers(request);
      batch.request = { keys: [], jsons: [], heads: [], columns: [] };
    }
  }

  /** One request to the workers (at most SEAL_CHUNK row images); its rows wait for it in `applyNow`, or are sealed there when the workers failed. */
  private sendToWorkers({ keys, jsons, heads, columns }: PlannedRequest): void {
    const request: SealRequestState = {
      done: this.workers!.sealPayloads(keys, jsons, heads).then(
        (sealed) => {
          request.sealed = sealed;
        },
        () => {
          request.failed = true;
        },
      ),
      sealed: null,
      failed: false,
      columns,
    };
    this.requests.push(request);
  }

  private shapeOf(schema: TableSchema): Shape | null {
    if (schema === this.lastSchema) return this.lastShape;
    const known = this.shapes.get(schema);
    if (known !== undefined) {
      this.lastSchema = schema;
      this.lastShape = known;
      return known;
    }
    const table = tableName(schema);
    const personal = this.tables.get(table);
    let shape: Shape | null = null;
    if (personal) {
      const unsupported = (message: string, column: string) =>
        new SluiceError(`table ${table}: ${message} (governance.tables.${table}.personal)`, { code: "SCHEMA_UNSUPPORTED", context: { component: "capture", source: schema.source, table, column } });
      const keyed = personal.columns.filter((column) => schema.key.includes(column));
      if (keyed.length > 0) throw unsupported(`column ${keyed[0]} of the key cannot be personal: the key identifies the row in every topic and sink, in clear. Give the table another key`, keyed[0]!);
      const subject = schema.columns.find((c) => c.name === personal.subject);
      if (!subject) throw unsupported(`the subject column ${personal.subject} is not a column of the table`, personal.subject);
      // A subject no sink can match exactly would be forgotten by its key and not in the sinks, or the other way round.
      const problem = subjectTypeProblem(logicalType(subject.dbType, schema.sourceKind));
      if (problem !== null) throw unsupported(subjectTypeRefusal(subject.name, subject.dbType, problem), subject.name);
      // A personal column renamed at the source (or misspelt here) would otherwise go out in clear under its new name.
      const absent = absentColumns(personal.columns, schema.columns);
      if (absent.length > 0) throw unsupported(absentGoverned(table, schema.source, absent, "personal", "personal.columns"), absent[0]!);
      const columns: ColumnSchema[] = schema.columns.map((column) => {
        if (!personal.columns.includes(column.name)) return column;
        const { default: _default, ...rest } = column;
        // Ciphertext is text; a value whose key is destroyed reads as null.
        return { ...rest, dbType: "text", nullable: true };
      });
      shape = { schema: { ...schema, columns }, personal, table, jsonNames: personal.columns.some(isArrayIndex) ? null : personal.columns.map((column) => `${JSON.stringify(column)}:`) };
    }
    this.shapes.set(schema, shape);
    this.lastSchema = schema;
    this.lastShape = shape;
    return shape;
  }
}

/** The clear values of the personal columns of an event's row images, for keeping them out of error texts. */
function openedValues(event: ChangeEvent, columns: readonly string[]): string[] {
  const values: string[] = [];
  for (const row of [event.before, event.after]) {
    if (row === null) continue;
    for (const column of columns) {
      const value = row[column];
      if (typeof value === "string") values.push(value);
    }
  }
  return values;
}

/** Keys of values found unreadable for good (their key is gone after a catch-up), kept at most this many. */
const DEAD_KEYS = 100_000;

/** The sinks' side: decrypts the personal columns of decoded events; a value whose key is destroyed becomes null. */
export class PersonalDataDecryptor {
  private readonly tables: ReadonlyMap<string, ReadonlyMap<string, PersonalTable>>;
  private readonly keys: () => Promise<SubjectKeyStore>;
  private readonly dead = new Set<string>();
  private caughtUpAt = Date.now();

  constructor(config: SluiceConfig, keys: () => Promise<SubjectKeyStore>) {
    this.tables = new Map(config.sources.map((s) => [s.name, personalTables(s)]));
    this.keys = keys;
  }

  /** The key store, for `sluice forget` run by the sink's process (sink-worker.ts). */
  store(): Promise<SubjectKeyStore> {
    return this.keys();
  }

  async apply(event: ChangeEvent): Promise<ChangeEvent> {
    const personal = this.tables.get(event.schema.source)?.get(tableName(event.schema));
    if (!personal || (event.before === null && event.after === null)) return event;
    const store = await this.keys();
    if (Date.now() - this.caughtUpAt >= KEY_CATCH_UP_MS) {
      this.caughtUpAt = Date.now();
      await store.catchUp();
    }
    const source = event.schema.source;
    const rewrite = async (row: Row | null): Promise<Row | null> => {
      if (row === null) return null;
      let out: Record<string, ColumnValue> | null = null;
      let opened: Record<string, string> | null = null;
      let openedYet = false;
      for (const column of personal.columns) {
        const value = row[column];
        if (!isEncrypted(value)) continue;
        out ??= { ...row };
        if (encryptedBy(value) === null || isSealed(value)) {
          // Sealed values, or a reference to them: the row image's one sealed value is opened once.
          if (!openedYet) {
            openedYet = true;
            const sealed = personal.columns.map((c) => row[c]).find(isSealed);
            opened = sealed === undefined ? null : await this.open(store, source, sealed, tableName(event.schema));
          }
          out[column] = opened !== null && Object.hasOwn(opened, column) ? opened[column]! : null;
        } else out[column] = await this.decrypt(store, source, value, valueContext(event.schema, column));
      }
      return out ?? row;
    };
    const decrypted: ChangeEvent = { ...event, before: await rewrite(event.before), after: await rewrite(event.after) };
    markPersonalValues(decrypted, openedValues(decrypted, personal.columns));
    return decrypted;
  }

  /** The key an encrypted value names, or null when it is gone for good. */
  private async keyOf(store: SubjectKeyStore, source: string, text: string): Promise<Buffer | null> {
    const by = encryptedBy(text);
    if (by === null) return null;
    const dead = `${source}\u0000${by.subject}\u0000${by.keyId}`;
    if (this.dead.has(dead)) return null;
    const matching = async () => {
      const key = await store.keyIfKnown(source, by.subject);
      return key !== null && dataKeyId(key).toString("hex") === by.keyId ? key : null;
    };
    let key = await matching();
    if (key === null) {
      // Capture stores a key before any value that uses it: after reading the key topic to its end, a key still missing is gone for good.
      await store.catchUp();
      key = await matching();
    }
    if (key === null) {
      if (this.dead.size >= DEAD_KEYS) this.dead.clear();
      this.dead.add(dead);
    }
    return key;
  }

  /** A value of the first format (one value per encryption). */
  private async decrypt(store: SubjectKeyStore, source: string, text: string, context: string): Promise<string | null> {
    const key = await this.keyOf(store, source, text);
    if (key === null) return null;
    try {
      return decryptValue(text, key, context).toString("utf8");
    } catch {
      return null;
    }
  }

  /** The sealed values of a row image, by column; null when their key is gone or they fail their integrity check. */
  private async open(store: SubjectKeyStore, source: string, text: string, table: string): Promise<Record<string, string> | null> {
    const key = await this.keyOf(store, source, text);
    if (key === null) return null;
    try {
      return openValues(text, key, table);
    } catch {
      return null;
    }
  }
}
