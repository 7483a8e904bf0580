/**
 * The Elasticsearch sink: one index per table (`<target>__v<N>`) behind the alias `<target>`
 * users search; the document id is the row's key (keys.ts). Every write is an `index` operation
 * with external versioning by source position, so Elasticsearch itself refuses anything not
 * newer than what it holds (409: counted as stale and skipped).
 *
 * Deletes are soft: the document is replaced by a tombstone {key, _sluice_version,
 * _sluice_deleted: true}, which the alias filter hides. A real delete would be forgotten after
 * `index.gc_deletes` (60 s by default), and a replayed older insert would then bring the row
 * back; a tombstone keeps its version for ever. Truncates record their version in the index's
 * `_meta` and in the alias filter (which hides every document at or below it), then delete the
 * older documents; should one come back by replay later, the filter still hides it.
 *
 * Offsets go to the index `sluice-offsets` after the bulk requests succeeded. So does a record of
 * each target the sink made a live index for: a target recorded whose alias is gone was deleted by
 * hand, and its table halts rather than get a new empty index filled from the stored offsets.
 */
import { randomUUID } from "node:crypto";
import { Client } from "@elastic/elasticsearch";
import { currentSecret } from "../../config/secret-files.ts";
import type { Logger } from "../../runtime/logger.ts";
import type { SinkChange, TableId, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { readTlsFiles } from "../common/tls-files.ts";
import type { TlsFiles } from "../common/tls-files.ts";
import { probeTls } from "../common/tls-probe.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import { allIndices, collapseChanges, hasUnchanged } from "../sinks/batch.ts";
import type { RowChange, TableChanges } from "../sinks/batch.ts";
import { defaultOf, DELETED_COLUMN, firstVersionWith, initialColumns, planColumns, VERSION_COLUMN } from "../sinks/columns.ts";
import { deadlineError, pastDeadline } from "../sinks/deadline.ts";
import type { PlanContext, SinceOf, TargetColumn } from "../sinks/columns.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import type { ErasableSink, ErasureRequest, OffsetWriteResult, RebuildRowCounts, RebuildShadow, StagedWrite, StagingSink, StoredSinkOffset, VersionedSink } from "../sinks/contract.ts";
import { CATALOG_MISMATCH, errorMessage, isAuthRefusal, rebuildState, rowRejected, schemaUnsupported, TARGET_BLOCKED, targetBlocked, ValueRejected } from "../sinks/errors.ts";
import { Failures } from "../sinks/failures.ts";
import { keyId } from "../sinks/keys.ts";
import { physicalName, renderTarget, tableFilter, tableLabel } from "../sinks/naming.ts";
import { refuseSubjectColumn } from "../sinks/subject-column.ts";
import { positionLabel } from "../sinks/rows.ts";
import { Serial } from "../sinks/serial.ts";
import { TargetClaims } from "../sinks/target-claims.ts";
import { settleInTurn } from "../sinks/tables-in-flight.ts";
import { requestError, runBulk, tlsError } from "./bulk.ts";
import type { BulkOptions, ItemOutcome } from "./bulk.ts";
import type { ElasticsearchSinkConfig, ElasticsearchSinkOptions } from "./config.ts";
import { writeIndexOperation } from "./documents.ts";
import type { StoredDocument } from "./documents.ts";
import { OFFSETS_INDEX } from "./config.ts";
import { DERIVED_NAME_SUFFIX, Indices, rebuildAlias, targetNameProblem } from "./indices.ts";
import type { EsIndex, TargetIndexes } from "./indices.ts";
import { fieldInMapping, mappingRefusal } from "./mapping-refusal.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";
import { encodeJson, ExactSerializer } from "./json.ts";
import { ElasticsearchStagedWrite } from "./staged-write.ts";
import type { StagedIndex } from "./staged-write.ts";
import { documentValue, fieldMapping, fieldNameProblem, hasExactText, isAboveKeywordLimit, sameMapping } from "./mapping.ts";

type Mode = "live" | "rebuild";

const MGET_CHUNK = 1000;
/** Documents per page when documents are indexed again (erasure, a new column's default). */
const REINDEX_PAGE = 1000;
const SCROLL_KEEP = "5m";
/** Bytes a write's bulk operations start with room for, at least. */
const MIN_BULK_CAPACITY = 64 * 1024;

/** A document found to be indexed again. */
interface FoundDocument {
  readonly _id: string;
  readonly _version: number | bigint;
  readonly _source: Record<string, unknown>;
}

/** A column whose default the documents written before it do not all hold yet (recorded in the index's `_meta`). */
interface FillingColumn extends TargetColumn {
  readonly filling?: true;
}

function withoutFilling({ filling: _filling, ...column }: FillingColumn): TargetColumn {
  return column;
}

export class ElasticsearchSink implements VersionedSink, ErasableSink, StagingSink {
  readonly name: string;
  readonly offsetsAtomic = false;
  /** For messages such as SINK_TARGET_OFFSETS_LOST. */
  readonly targetLabel: string;
  readonly #config: ElasticsearchSinkConfig;
  readonly #options: ElasticsearchSinkOptions;
  readonly #logger: Logger;
  readonly #accept: (table: TableId) => boolean;
  readonly #serial = new Serial();
  #client: Client | null = null;
  #indices: Indices | null = null;
  /** Per target, its indexes as last read or written by this sink. */
  readonly #targets = new Map<string, TargetIndexes>();
  /** Per target, the shadow its last swap moved the alias to, until its next prepare: a swap tried again recognises its own move done. */
  readonly #lastSwap = new Map<string, string>();
  /** This sink process's mark in the `_meta` of the rebuild indexes it makes (EsIndex.maker). */
  readonly #maker = randomUUID();
  /** Which table each alias is (lower case: tables "Up" and "up" get one name). */
  readonly #claims: TargetClaims;
  /** The targets this sink made a live index for (recorded in `sluice-offsets`, read at open). */
  #made = new Set<string>();
  /** Targets whose index was reported deleted while this process ran: a retry makes a new index (the documented remedy). */
  readonly #goneReported = new Set<string>();
  /**
   * Targets whose alias was read since open (GET _alias: no other index its write index), and those halted because
   * one was: read again at each write of the table (the runtime's blocked retry) until the alias is put right.
   */
  #aliasRead = new Set<string>();
  #aliasElsewhere = new Set<string>();
  /** Identities of the topics read now: stored with every offset. */
  #topicIds: ReadonlyMap<string, string> = new Map();
  /** Per index written, the bytes its next write's bulk operations start with room for (about its last write's). */
  readonly #bulkCapacity = new WeakMap<EsIndex, number>();
  /** Per schema object staged for: the index columns it was found to fit as it is (no mapping change). */
  readonly #fits = new WeakMap<TableSchema, readonly TargetColumn[]>();

  constructor(config: ElasticsearchSinkConfig, options: ElasticsearchSinkOptions) {
    this.name = config.name;
    this.#config = config;
    this.#options = options;
    this.#logger = options.logger.child({ component: "sink", sink: config.name, kind: "elasticsearch" });
    this.#accept = tableFilter(config);
    this.#claims = new TargetClaims(config.name, { derived: DERIVED_NAME_SUFFIX });
    this.targetLabel = `the sink's documents in Elasticsearch index ${OFFSETS_INDEX} at ${config.nodes.map((node) => new URL(node).origin).join(",")}`;
  }

  async open(signal: AbortSignal): Promise<void> {
    // Read again at each open: a password_file or api_key_file rotated while the sink ran is taken when it reconnects.
    const apiKey = currentSecret(this.#config, "api_key");
    const auth = apiKey
      ? { apiKey }
      : this.#config.username
        ? { username: this.#config.username, password: currentSecret(this.#config, "password") ?? "" }
        : undefined;
    const tls = this.#config.tls ? readTlsFiles(this.#config.tls, { label: `sink "${this.name}"`, section: "tls", context: { component: "sink", sink: this.name } }) : undefined;
    const client = new Client({
      nodes: [...this.#config.nodes],
      ...(auth ? { auth } : {}),
      ...(tls ? { tls: { ...tls, rejectUnauthorized: true } } : {}),
      Serializer: ExactSerializer,
      maxRetries: 0,
      requestTimeout: 60_000,
    });
    try {
      await client.cluster.health({ timeout: "10s" }, { signal });
      const indices = new Indices(client, this.name, this.#config.refresh_interval ?? null);
      await this.#ensureOffsetsIndex(client, signal);
      this.#made = await this.#madeTargets(client, signal);
      this.#aliasRead = new Set();
      this.#aliasElsewhere = new Set();
      this.#client = client;
      this.#indices = indices;
    } catch (error) {
      await client.close().catch(() => undefined);
      const failure = requestError(error, this.name, "connect");
      throw (await this.#tlsRefusal(failure, tls)) ?? failure;
    }
    this.#logger.info({ nodes: this.#config.nodes }, "Elasticsearch sink open");
  }

  /**
   * A connection an https node closed may be a refused client certificate (TLS 1.3 says so after
   * the handshake, and the client reports only the close): a handshake of its own tells, so that
   * is a permanent SINK_TLS_FAILED instead of an outage waited out for ever.
   */
  async #tlsRefusal(failure: Error, tls: TlsFiles | undefined): Promise<SluiceError | undefined> {
    if (!(failure instanceof SluiceError) || !failure.retriable) return undefined;
    for (const node of this.#config.nodes) {
      const url = new URL(node);
      if (url.protocol !== "https:") continue;
      const refused = await probeTls(url, { ...tls, rejectUnauthorized: true });
      if (refused !== undefined) return tlsError(url.origin, refused, this.name, "connect", failure);
    }
    return undefined;
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = null;
    this.#indices = null;
    this.#targets.clear();
    await client?.close();
  }

  write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#write(changes, "live", offsets ?? null, signal));
  }

  stagedWrite(signal: AbortSignal): StagedWrite | null {
    if (this.#client === null) return null;
    return new ElasticsearchStagedWrite({
      indexFor: (schema) => this.#stagedIndex(schema),
      prepare: (schema) => this.#serial.run(() => this.#prepareStaged(schema, signal)),
      capacity: (index) => this.#bulkCapacity.get(index) ?? MIN_BULK_CAPACITY,
      write: (indexes, signal, offsets) => this.#serial.run(() => this.#writeStaged(indexes, offsets ?? null, signal)),
    });
  }

  writeRebuild(changes: readonly SinkChange[], signal: AbortSignal): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#write(changes, "rebuild", null, signal));
  }

  storeOffsets(offsets: readonly TopicPartitionOffset[], signal: AbortSignal): Promise<void> {
    return this.#serial.run(() => this.#storeOffsets(offsets, signal));
  }

  useTopicIds(ids: ReadonlyMap<string, string>): void {
    this.#topicIds = new Map(ids);
  }

  committedOffsets(signal: AbortSignal = AbortSignal.timeout(60_000)): Promise<StoredSinkOffset[]> {
    return this.#serial.run(async () => {
      let response: { hits: { hits: { _source?: { topic: string; partition: number; offset: number | bigint; topic_id?: string } }[] } };
      try {
        await this.#idx().refresh(OFFSETS_INDEX, signal);
        response = (await this.#call("read offsets", () => this.#cli().search({ index: OFFSETS_INDEX, size: 10_000, query: { bool: { filter: [{ term: { sink: this.name } }, { exists: { field: "topic" } }] } } }, { signal }))) as typeof response;
      } catch (error) {
        // The client reports its abort as RequestAbortedError whatever aborted it: a deadline passed is an outage.
        if (pastDeadline(signal)) throw deadlineError("the offsets read", "Elasticsearch", { component: "sink", sink: this.name }, error);
        throw error;
      }
      return response.hits.hits
        .map((hit) => hit._source)
        .filter((s) => s !== undefined)
        .map((s) => ({ topic: s.topic, partition: Number(s.partition), offset: BigInt(s.offset), topicId: s.topic_id ?? null }))
        .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    });
  }

  prepareRebuild(table: TableId, signal: AbortSignal, shape?: TableSchema): Promise<void> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      const context = { sink: this.name, table: tableLabel(table) };
      const columns = shape ? initialColumns(shape, context) : null;
      if (columns) this.#checkNames(columns, context);
      this.#lastSwap.delete(target);
      const indexes = await this.#load(target, signal);
      if (indexes.shadow) {
        await this.#idx().remove(indexes.shadow, signal);
        indexes.shadow = null;
      }
      const generation = ++indexes.maxGeneration;
      const shadow: EsIndex = {
        physical: physicalName(target, generation),
        target,
        role: "shadow",
        generation,
        truncateVersion: 0n,
        columns: columns ?? indexes.live?.columns ?? [],
        owner: tableIdOf(table),
        maker: this.#maker,
      };
      try {
        await this.#idx().create(shadow, signal);
      } catch (error) {
        // The server may have made the index (with its rebuild alias) before the reply was lost: the step
        // tried again reads what exists, drops that index and makes the next, never two under the alias.
        this.#targets.delete(target);
        if (!alreadyExists(error)) throw nameTaken(error) ? takenRefusal(shadow, context, error) : error;
        // Made by an earlier try whose reply was lost, and not yet listed when this try read the target: this sink's own, taken as
        // the shadow. Any other index of that name (another process's rebuild, another tool's) is refused.
        if (!(await this.#idx().madeBy(shadow.physical, rebuildAlias(target), this.#maker, signal))) throw shadowTaken(shadow, context, error);
        this.#targets.set(target, indexes);
        this.#logger.info({ target, shadow: shadow.physical }, "rebuild's index found made by an earlier try of its prepare (its reply lost): taken as the shadow");
      }
      indexes.shadow = shadow;
      this.#logger.info({ target, shadow: shadow.physical }, "rebuild prepared: writes go to the live index and the shadow");
    });
  }

  swap(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      try {
        const indexes = await this.#load(target, signal);
        const shadow = indexes.shadow;
        if (!shadow) {
          // Tried again after its alias move went through and its reply was lost: the load found the shadow live (and dropped the old index).
          if (indexes.live !== null && indexes.live.physical === this.#lastSwap.get(target)) {
            await this.#recordMade(target, signal);
            this.#logger.info({ target, live: indexes.live.physical }, "rebuild swapped in (found done when tried again)");
            return;
          }
          throw rebuildState("no rebuild in progress (call prepareRebuild first)", { sink: this.name, table: tableLabel(table) });
        }
        this.#lastSwap.set(target, shadow.physical);
        const live = indexes.live;
        await this.#idx().swap(live, shadow, signal);
        shadow.role = "live";
        indexes.live = shadow;
        indexes.shadow = null;
        if (live) await this.#idx().remove(live, signal);
        await this.#recordMade(target, signal);
        this.#logger.info({ target, live: shadow.physical }, "rebuild swapped in");
      } catch (error) {
        // Read again when tried again: the server may have moved the alias (its reply lost) or not.
        this.#targets.delete(target);
        throw error;
      }
    });
  }

  rebuildRowCounts(table: TableId, signal: AbortSignal): Promise<RebuildRowCounts> {
    return this.#serial.run(async () => {
      const indexes = await this.#load(this.#target(table), signal);
      return {
        live: indexes.live ? await this.#idx().countCurrent(indexes.live, signal) : null,
        shadow: indexes.shadow ? await this.#idx().countCurrent(indexes.shadow, signal) : 0,
      };
    });
  }

  /**
   * The rebuild markers' indexes that are this sink's: of a table it takes whose target it renders
   * to the marker's, or, without a table in their `_meta`, of a target it made a live index for.
   */
  rebuildShadows(signal: AbortSignal): Promise<RebuildShadow[]> {
    return this.#serial.run(async () => {
      const shadows = await this.#idx().shadows(signal);
      const mine = (owner: TableId | null, target: string) =>
        owner === null ? this.#made.has(target) : this.#accept(owner) && renderTarget(this.#config.target, owner).toLowerCase() === target;
      return shadows
        .filter((s) => mine(s.owner, s.target))
        .map((s) => ({ table: s.owner === null ? null : tableIdOf(s.owner), target: s.target, physical: s.physical, preparedAtMs: s.createdAtMs }));
    });
  }

  abortRebuild(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      const indexes = await this.#load(this.#target(table), signal);
      if (indexes.shadow) await this.#idx().remove(indexes.shadow, signal);
      indexes.shadow = null;
    });
  }

  /**
   * `sluice forget`: nulls the subject's personal fields in the live index and a rebuild's index.
   * Each document is indexed again at its own version (external_gte), so later changes apply as
   * before; update by query would need the reindex module, which not every distribution has.
   */
  erase(request: ErasureRequest, signal: AbortSignal): Promise<number> {
    return this.#serial.run(async () => {
      const indexes = await this.#load(this.#target(request.table), signal);
      let changed = 0;
      for (const index of [indexes.live, indexes.shadow]) {
        const subject = index?.columns.find((c) => c.name === request.subjectColumn);
        if (!index || !subject) continue;
        const fields = request.columns.filter((name) => index.columns.some((c) => c.name === name && !c.key));
        if (fields.length === 0) continue;
        refuseSubjectColumn(this.name, tableLabel(request.table), subject);
        const matching = await this.#subjectFilter(index, subject, request.subject, signal);
        if (matching === null) continue;
        const nulls = Object.fromEntries(fields.map((f) => [f, null]));
        const failed = (reason: string) =>
          new SluiceError(`sink ${this.name}: Elasticsearch did not store the erased documents of ${index.physical}: ${reason}; run sluice forget again`, {
            code: "SINK_ERASE_FAILED",
            retriable: true,
            context: { component: "sink", sink: this.name, table: tableLabel(request.table) },
          });
        await this.#idx().refresh(index.physical, signal);
        const query = { bool: { filter: matching.filter, should: fields.map((f) => ({ exists: { field: f } })), minimum_should_match: 1, must_not: matching.mustNot } };
        const exactText = matching.exactText;
        if (exactText === null) {
          // Every document found is the subject's and drops out of the query once erased: search again until none is left.
          for (;;) {
            const response = (await this.#call("find a subject's documents", () =>
              this.#cli().search({ index: index.physical, size: REINDEX_PAGE, version: true, query }, { signal }),
            )) as { hits: { hits: readonly FoundDocument[] } };
            const hits = response.hits.hits;
            if (hits.length === 0) break;
            await this.#reindex(index, hits, (source) => ({ ...source, ...nulls }), signal, failed);
            if (index.role === "live") changed += hits.length;
          }
        } else {
          // Other subjects' documents are found too and stay found: read every one once, through a scroll.
          await this.#scroll(index, query, signal, async (found) => {
            const hits = found.filter((hit) => hit._source[subject.name] === exactText);
            if (hits.length === 0) return;
            await this.#reindex(index, hits, (source) => ({ ...source, ...nulls }), signal, failed);
            if (index.role === "live") changed += hits.length;
          });
        }
      }
      return changed;
    });
  }

  /**
   * How erase finds a subject's documents: `filter` and `mustNot` clauses, and the text the subject column's value in
   * `_source` must equal (null: every document found is the subject's). A string longer than the keyword subfield's
   * ignore_above (mapping.ts, in every index Sluice made) is not in that subfield: such documents are found by a phrase
   * of the subject on the text field, which every document holding exactly that value matches, and kept when their
   * `_source` holds exactly the subject (the phrase also finds longer texts and other letter cases). A subject the
   * analyzer makes no words of cannot be a phrase: then every document whose value is not in the subfield is read.
   */
  async #subjectFilter(index: EsIndex, subject: TargetColumn, text: string, signal: AbortSignal): Promise<{ filter: object[]; mustNot: object[]; exactText: string | null } | null> {
    if (subject.type.kind !== "string" || !isAboveKeywordLimit(text)) {
      const filter = subjectFilter(subject.name, subject.type, text);
      return filter === null ? null : { filter: [filter], mustNot: [], exactText: null };
    }
    const analyzed = (await this.#call("analyze a subject", () => this.#cli().indices.analyze({ index: index.physical, field: subject.name, text }, { signal }))) as { tokens?: readonly unknown[] };
    const phrase = (analyzed.tokens ?? []).length > 0 ? [{ match_phrase: { [subject.name]: text } }] : [];
    return { filter: phrase, mustNot: [{ exists: { field: `${subject.name}.keyword` } }], exactText: text };
  }

  /** Runs `page` on every document `query` finds in `index` as it is now, a page at a time (a scroll: documents written meanwhile are not read). */
  async #scroll(index: EsIndex, query: object, signal: AbortSignal, page: (hits: readonly FoundDocument[]) => Promise<void>): Promise<void> {
    type Page = { _scroll_id?: string; hits: { hits: readonly FoundDocument[] } };
    let response = (await this.#call("find a subject's documents", () => this.#cli().search({ index: index.physical, size: REINDEX_PAGE, version: true, query, scroll: "5m" }, { signal }))) as Page;
    try {
      while (response.hits.hits.length > 0) {
        await page(response.hits.hits);
        const id = response._scroll_id!;
        response = (await this.#call("find a subject's documents", () => this.#cli().scroll({ scroll_id: id, scroll: "5m" }, { signal }))) as Page;
      }
    } finally {
      const id = response._scroll_id;
      if (id !== undefined) await this.#cli().clearScroll({ scroll_id: id }).catch(() => undefined);
    }
  }

  /**
   * Indexes `hits` again as `edit` makes them, each at its own version (external_gte): a newer
   * write always wins over it, and a later write of the same version is no conflict (update by
   * query would give the documents internal versions, which later writes conflict with, and needs
   * the reindex module, which not every distribution has). Refreshes, so a search sees the result.
   */
  async #reindex(
    index: EsIndex,
    hits: readonly FoundDocument[],
    edit: (source: Record<string, unknown>) => Record<string, unknown>,
    signal: AbortSignal,
    failed: (reason: string) => SluiceError,
  ): Promise<void> {
    const operations = NdjsonOperations.ofLines(
      hits.map((hit) => [encodeJson({ index: { _index: index.physical, _id: hit._id, version: BigInt(hit._version), version_type: "external_gte" } }), encodeJson(edit(hit._source))]),
    );
    const outcomes = await this.#bulk(operations, signal, { refresh: true });
    const failure = outcomes.find((o) => o.kind === "failed");
    if (failure && failure.kind === "failed") throw failed(failure.reason);
  }

  /**
   * Documents written before a column with a default was added lack its field, where the source's
   * rows hold the default: each document below the column's `since` gets it (#reindex; an explicit
   * NULL of a newer change has no field either, and stays). The column is marked `filling` in the
   * index's `_meta` until every page is done, and a marked column is filled again when the index is
   * next loaded: a fill a crash cut short is done again (each document gets the same value).
   * Pages of a scroll, as `exists` cannot tell a filled document from another where the value
   * indexes nothing (an empty JSON object or list, binary fields).
   */
  async #fillDefaults(index: EsIndex, context: PlanContext, signal: AbortSignal): Promise<void> {
    const pending = index.columns.filter((column) => (column as FillingColumn).filling === true);
    if (pending.length === 0) return;
    for (const column of pending) {
      let value: unknown;
      try {
        value = documentValue(column.type, defaultOf(column));
      } catch {
        continue; // a default the field cannot take: as if it had none
      }
      const query = {
        bool: {
          must_not: [{ exists: { field: column.name } }],
          filter: [{ range: { [VERSION_COLUMN]: { lt: column.since } } }, { term: { [DELETED_COLUMN]: false } }],
        },
      };
      const failed = (reason: string) =>
        new SluiceError(`sink ${this.name}: Elasticsearch did not store the default of the new column "${column.name}" in ${index.physical}: ${reason}`, {
          code: "SINK_DEFAULT_FILL_FAILED",
          retriable: true,
          context: { component: "sink", sink: this.name, table: context.table, column: column.name },
        });
      await this.#idx().refresh(index.physical, signal);
      type Page = { _scroll_id?: string; hits: { hits: readonly FoundDocument[] } };
      let page = (await this.#call("find documents without a new column's default", () =>
        this.#cli().search({ index: index.physical, scroll: SCROLL_KEEP, size: REINDEX_PAGE, version: true, sort: ["_doc"], query: query as never }, { signal }),
      )) as Page;
      let filled = 0;
      try {
        while (page.hits.hits.length > 0) {
          await this.#reindex(index, page.hits.hits, (source) => ({ ...source, [column.name]: value }), signal, failed);
          filled += page.hits.hits.length;
          const scrollId = page._scroll_id as string;
          page = (await this.#call("find documents without a new column's default", () => this.#cli().scroll({ scroll_id: scrollId, scroll: SCROLL_KEEP }, { signal }))) as Page;
        }
      } finally {
        const scrollId = page._scroll_id;
        if (scrollId !== undefined) await this.#cli().clearScroll({ scroll_id: scrollId }).catch(() => undefined);
      }
      if (filled > 0) this.#logger.info({ index: index.physical, column: column.name, documents: filled }, "documents written before the column got its default");
    }
    index.columns = index.columns.map((column) => ((column as FillingColumn).filling === true ? withoutFilling(column as FillingColumn) : column));
    await this.#idx().putMappings(index, signal);
  }

  // --- writing -----------------------------------------------------------------------------

  /**
   * For the staged write: the live index a schema's changes go to as they are (loaded, claimed for
   * the table, no rebuild's shadow, no default being filled, a mapping that holds the schema);
   * null for a table the sink does not take; undefined otherwise (#write does what is needed).
   */
  #stagedIndex(schema: TableSchema): EsIndex | null | undefined {
    if (!this.#accept(schema)) return null;
    const target = this.#claims.owned(schema, renderTarget(this.#config.target, schema).toLowerCase());
    if (target === null) return undefined;
    const indexes = this.#targets.get(target);
    const live = indexes?.live;
    if (live === undefined || live === null || indexes?.shadow || live.columns.length === 0) return undefined;
    if (this.#fits.get(schema) === live.columns) return live;
    if (live.columns.some((column) => (column as FillingColumn).filling === true)) return undefined;
    try {
      const plan = planColumns(live.columns, schema, { sink: this.name, table: tableLabel(schema) });
      if (plan.added.length > 0 || plan.changed.length > 0) return undefined;
    } catch {
      return undefined;
    }
    this.#fits.set(schema, live.columns);
    return live;
  }

  /**
   * The table's target claimed and its indexes loaded (as #planTable does first), its live index
   * created when there is none, then #stagedIndex; undefined when anything fails (#write does it
   * again and reports it). Not created for a schema with a column default: the write dates such a
   * column from the oldest change of the batch that has it, which staging cannot know yet. A
   * first batch staged, not written whole, keeps V8 from pretenuring the decoder's objects for
   * the rest of the process, and the runtime's pause of staging after a fall back does not follow.
   */
  async #prepareStaged(schema: TableSchema, signal: AbortSignal): Promise<EsIndex | null | undefined> {
    if (!this.#accept(schema)) return null;
    const context = { sink: this.name, table: tableLabel(schema) };
    try {
      const target = this.#target(schema);
      const indexes = await this.#load(target, signal);
      const owner = indexes.live?.owner ?? indexes.shadow?.owner;
      if (owner !== undefined) this.#claims.confirm(schema, target, owner);
      // The alias not read yet, or sending writes to another index: the batch goes through the write, which halts the table.
      if (indexes.live !== null && this.#aliasUnread(target) && (await this.#writeIndexesElsewhere(indexes.live, signal)).length > 0) return undefined;
      if (indexes.live === null && indexes.shadow === null && initialColumns(schema, context).every((column) => column.default === undefined)) {
        await this.#createLive(indexes, target, schema, context, () => undefined, signal);
      }
      // An index running an ingest pipeline: left to the write, which halts the table.
      if ([indexes.live, indexes.shadow].some((index) => (index?.pipelines?.length ?? 0) + (index?.sourceAltered?.length ?? 0) > 0)) return undefined;
    } catch (error) {
      this.#logger.debug({ err: error, table: context.table }, "index not prepared for a staged write: the batch goes through the write");
      return undefined;
    }
    return this.#stagedIndex(schema);
  }

  #aliasUnread(target: string): boolean {
    return !this.#aliasRead.has(target) || this.#aliasElsewhere.has(target);
  }

  /**
   * Reads the live index's alias: the other indexes it makes its write index (none: noted, not read again until the sink
   * reopens or a write lands elsewhere). An alias on the live index without the sink's filter (put back by hand with a plain
   * add, or its filter changed) would show deleted and truncated rows in searches: it gets the filter again, before writing.
   */
  async #writeIndexesElsewhere(live: EsIndex, signal: AbortSignal): Promise<string[]> {
    const alias = await this.#idx().readAlias(live, signal);
    if (alias.elsewhere.length === 0) {
      if (alias.filterWrong) {
        await this.#idx().setLiveFilter(live, signal);
        this.#logger.warn({ alias: live.target, index: live.physical }, "the alias of the live index did not carry the sink's filter (deleted and truncated rows hidden): set again");
      }
      this.#aliasRead.add(live.target);
    }
    return alias.elsewhere;
  }

  /** Sends staged operations (sinks/contract.ts StagedWrite.write): throws unless every one is applied or stale, then stores `offsets`. */
  async #writeStaged(staged: readonly StagedIndex[], offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<boolean> {
    signal.throwIfAborted();
    for (const { index, columns, truncateVersion } of staged) {
      const indexes = this.#targets.get(index.target);
      if (indexes?.live !== index || indexes.shadow || index.columns !== columns || index.truncateVersion !== truncateVersion) {
        throw new SluiceError(`the Elasticsearch index ${index.physical} changed while a batch was staged for it`, { code: "SINK_STAGED_STALE", context: { component: "sink", sink: this.name } });
      }
    }
    const writes = staged.map((table) => async () => {
      const { index, operations } = table;
      if (operations.length === 0) return;
      this.#bulkCapacity.set(index, Math.max(MIN_BULK_CAPACITY, operations.byteLength * 1.25));
      const sent = table.members();
      const outcomes = await this.#bulk(operations, signal, { refresh: this.#options.refresh ?? false, requireAlias: true, index: writeAlias(index), expectIndex: () => index.physical, ...(sent === undefined ? {} : { members: sent }) });
      // Any failure: the batch goes through #write, which sorts each change's fate by the sink's policy.
      for (const position of sent ?? outcomes.keys()) {
        const outcome = outcomes[position];
        if (outcome?.kind === "failed") {
          throw new SluiceError(`Elasticsearch refused a staged operation for ${index.physical}: ${outcome.reason}`, { code: "SINK_STAGED_FAILED", context: { component: "sink", sink: this.name } });
        }
      }
    });
    await settleInTurn(writes);
    if (offsets === null) return false;
    await this.#storeOffsets(offsets, signal);
    return true;
  }

  async #write(changes: readonly SinkChange[], mode: Mode, offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<OffsetWriteResult> {
    signal.throwIfAborted();
    const { tables } = collapseChanges(changes, this.#accept);
    const failures = new Failures();
    // Indexes and mappings one table at a time; the tables' bulk requests side by side.
    const writes: (() => Promise<void>)[] = [];
    for (const table of tables) {
      const write = await this.#planTable(table, mode, failures, signal);
      if (write) writes.push(write);
    }
    await settleInTurn(writes);
    const offsetsStored = offsets !== null && failures.size === 0;
    if (offsetsStored) await this.#storeOffsets(offsets, signal);
    return { failures: failures.list(), offsetsStored };
  }

  /** Prepares one table's write (its indexes created and their mappings evolved); returns the write of its rows and truncate, or null when there is none. */
  async #planTable(changes: TableChanges, mode: Mode, failures: Failures, signal: AbortSignal): Promise<(() => Promise<void>) | null> {
    const label = tableLabel(changes.table);
    const context = { sink: this.name, table: label };
    for (const { index, error } of changes.invalid) failures.add([index], rowRejected(error.message, { ...context, column: error.column }, error));
    const target = this.#target(changes.table);
    const indexes = await this.#load(target, signal);
    const owner = indexes.live?.owner ?? indexes.shadow?.owner;
    if (owner !== undefined) this.#claims.confirm(changes.table, target, owner);
    let primary: EsIndex;
    let mirror: EsIndex | null = null;
    if (mode === "live") {
      try {
        primary = indexes.live ?? (await this.#createLive(indexes, target, changes.schemas[0] as TableSchema, context, firstVersionWith(changes.rows), signal));
      } catch (error) {
        // The index gone, or the alias moved onto indexes not the table's: the table's changes fail, the other tables go on.
        if (!(error instanceof SluiceError && (error.code === CATALOG_MISMATCH || error.code === TARGET_BLOCKED))) throw error;
        failures.add(allIndices(changes), error);
        return null;
      }
      mirror = indexes.shadow;
      if (this.#aliasUnread(target)) {
        const elsewhere = await this.#writeIndexesElsewhere(primary, signal);
        if (elsewhere.length > 0) {
          if (!this.#aliasElsewhere.has(target)) this.#logger.error({ table: label, alias: target, index: primary.physical, writeIndexes: elsewhere }, `the alias of ${label} sends writes to another index: the table halts`);
          this.#aliasElsewhere.add(target);
          failures.add(allIndices(changes), writeIndexElsewhere(target, primary.physical, elsewhere, context));
          return null;
        }
        this.#aliasElsewhere.delete(target);
      }
    } else {
      if (!indexes.shadow) {
        failures.add(allIndices(changes), rebuildState("no rebuild in progress for this table", context));
        return null;
      }
      primary = indexes.shadow;
    }
    const physicals = mirror ? [primary, mirror] : [primary];
    const piped = physicals.filter((index) => (index.pipelines?.length ?? 0) > 0);
    if (piped.length > 0) {
      // Loaded again (settings read) at the next write: the table goes on once the pipeline is taken off.
      this.#targets.delete(target);
      failures.add(allIndices(changes), ingestPipelineSet(piped, context));
      return null;
    }
    const filtered = physicals.filter((index) => (index.sourceAltered?.length ?? 0) > 0);
    if (filtered.length > 0) {
      this.#targets.delete(target);
      failures.add(allIndices(changes), sourceAlteredRefusal(filtered, context));
      return null;
    }
    // An index deleted behind the sink's back fails a request (mapping, reads, truncate) with 404: the table's changes fail as in #writeRows.
    const goneFails = (error: unknown): boolean => {
      const reason = indexNotFound(error);
      if (reason === null) return false;
      this.#targetGone(target);
      failures.add(allIndices(changes), indexGone(reason, context));
      return true;
    };
    const since = firstVersionWith(changes.rows);
    try {
      for (const physical of physicals) for (const schema of changes.schemas) await this.#evolve(physical, schema, context, since, signal);
      for (const physical of physicals) await this.#fillDefaults(physical, context, signal);
    } catch (error) {
      if (goneFails(error)) return null;
      throw error;
    }
    // The batch's rows go in before its truncate hides older documents, so a table never shows fewer rows than it has (a snapshot's reset follows its rows).
    const truncateVersion = changes.truncate?.version ?? 0n;
    const hiddenAtOrBelow = (index: EsIndex) => (index.truncateVersion > truncateVersion ? index.truncateVersion : truncateVersion);
    return async () => {
      try {
        await this.#writeRows(changes, primary, physicals, hiddenAtOrBelow, context, failures, signal);
        if (changes.truncate) for (const physical of physicals) await this.#truncate(physical, changes.truncate.version, signal);
      } catch (error) {
        if (!goneFails(error)) throw error;
      }
    };
  }

  async #writeRows(
    changes: TableChanges,
    primary: EsIndex,
    physicals: EsIndex[],
    hiddenAtOrBelow: (index: EsIndex) => bigint,
    context: PlanContext,
    failures: Failures,
    signal: AbortSignal,
  ): Promise<void> {
    const label = tableLabel(changes.table);
    const rows = changes.rows.filter((row) => row.version > hiddenAtOrBelow(primary));
    if (rows.length === 0) return;
    let stored: Map<string, StoredDocument>;
    try {
      stored = await this.#readStored(primary, rows.filter((row) => hasUnchanged(row.row)), context, signal);
    } catch (error) {
      // The index refuses reads (or is closed, or gone): the table halts, as when it refuses writes.
      if (!(error instanceof SluiceError && error.code === TARGET_BLOCKED)) throw error;
      failures.add(allIndices(changes), error);
      return;
    }
    // Each bulk operation and, at the same position, the change whose fate it decides.
    const operations = new NdjsonOperations(this.#bulkCapacity.get(primary) ?? MIN_BULK_CAPACITY);
    const planned: RowChange[] = [];
    // At the same position, the index the operation must land in (the alias it names is that index's).
    const landsIn: EsIndex[] = [];
    // One index: the request names its alias and the action lines leave it out; a rebuild's mirror too: each line names its own.
    const requestAlias = physicals.length === 1 ? writeAlias(primary) : undefined;
    for (const physical of physicals) {
      for (const change of rows) {
        if (change.version <= hiddenAtOrBelow(physical)) continue;
        const before = stored.get(change.id);
        if (physical === primary && before && before.version >= change.version) continue;
        try {
          writeIndexOperation(operations, requestAlias === undefined ? writeAlias(physical) : null, physical.columns, change, before);
          planned.push(change);
          landsIn.push(physical);
        } catch (error) {
          if (!(error instanceof ValueRejected)) throw error;
          failures.add(change.indices, rowRejected(error.message, { ...context, position: positionLabel(change), column: error.column }, error));
        }
      }
    }
    // A next write of about this size fits without growing its buffer.
    this.#bulkCapacity.set(primary, Math.max(MIN_BULK_CAPACITY, operations.byteLength * 1.25));
    const outcomes = await this.#bulk(operations, signal, { refresh: this.#options.refresh ?? false, requireAlias: true, expectIndex: (operation) => (landsIn[operation] as EsIndex).physical, ...(requestAlias === undefined ? {} : { index: requestAlias }) });
    // Loaded again at the next write: a retry after the operator's fix sees what is there then.
    if (outcomes.some((outcome) => outcome.kind === "failed" && outcome.target === "gone")) this.#targetGone(primary.target);
    // Read again at the next write: once put back, the alias gets the sink's filter again before anything is written (#writeIndexesElsewhere).
    if (outcomes.some((outcome) => outcome.kind === "failed" && outcome.target === "moved")) this.#aliasRead.delete(primary.target);
    outcomes.forEach((outcome, i) => {
      if (outcome.kind !== "failed") return;
      const change = planned[i] as RowChange;
      const where = { ...context, position: positionLabel(change) };
      const error =
        outcome.target === "blocked"
          ? targetBlocked(`Elasticsearch: ${outcome.reason}`, where)
          : outcome.target === "closed"
            ? indexClosed(outcome.reason, where)
            : outcome.target === "gone"
              ? indexGone(outcome.reason, where)
              : outcome.target === "ambiguous"
                ? aliasAmbiguous(outcome.reason, where)
                : outcome.target === "moved"
                  ? aliasMoved(landsIn[i] as EsIndex, outcome.reason, where)
                  : rowRejected(outcome.reason, where);
      failures.add(change.indices, outcome.retriable ? new ConnectionError(`Elasticsearch kept refusing a row of ${label}: ${outcome.reason}`, { code: "SINK_UNAVAILABLE", context: error.context }) : error, outcome.retriable);
    });
  }

  /** Current documents (realtime get) of changes with unchanged-TOAST columns, by key id. */
  async #readStored(index: EsIndex, changes: readonly RowChange[], where: PlanContext, signal: AbortSignal): Promise<Map<string, StoredDocument>> {
    const out = new Map<string, StoredDocument>();
    const keys = index.columns.filter((c) => c.key).map((c) => c.name);
    const ids = [...new Set(changes.map((c) => keyId(c.key, keys)))];
    for (let i = 0; i < ids.length; i += MGET_CHUNK) {
      const response = (await this.#call("read documents", () =>
        this.#cli().mget({ index: index.physical, ids: ids.slice(i, i + MGET_CHUNK), realtime: true }, { signal }),
      )) as { docs: { _id: string; found?: boolean; _version?: number | bigint; _source?: Record<string, unknown>; error?: MgetError }[] };
      for (const doc of response.docs) {
        // A document Elasticsearch could not read is not a missing one: written without its unchanged values, they would be lost.
        if (doc.error !== undefined) throw this.#unreadable(index, doc.error, where);
        if (!doc.found || doc._source === undefined) continue;
        out.set(doc._id, { version: BigInt(doc._version ?? 0), deleted: doc._source[DELETED_COLUMN] === true, source: doc._source });
      }
    }
    return out;
  }

  /**
   * A document mget could not read (its `error`, e.g. an index.blocks.read block, a closed index, no shard available): the
   * table's refusal when the index refuses reads (it halts, and goes on by itself once they are allowed), or an index gone;
   * otherwise retriable: the write is tried again.
   */
  #unreadable(index: EsIndex, error: MgetError, where: PlanContext): SluiceError {
    const reason = `${error.type ?? "error"}: ${error.reason ?? ""}`;
    const context = { sink: where.sink, table: where.table };
    const what = `reading the stored document of an unchanged-TOAST change from index ${index.physical}: ${reason}`;
    if (error.type === "cluster_block_exception") return targetBlocked(`Elasticsearch: ${what}`, context);
    if (error.type === "index_closed_exception") return indexClosed(what, context);
    if (error.type === "index_not_found_exception") {
      this.#targetGone(index.target);
      return indexGone(what, context);
    }
    return new ConnectionError(`Elasticsearch could not read a stored document of ${where.table} (${what})`, { code: "SINK_UNAVAILABLE", context: { component: "sink", ...context } });
  }

  async #truncate(index: EsIndex, version: bigint, signal: AbortSignal): Promise<void> {
    if (version <= index.truncateVersion) return;
    index.truncateVersion = version;
    await this.#idx().putMappings(index, signal);
    // Newer documents must be searchable before the alias filter hides the older ones.
    if (index.role === "live") {
      await this.#idx().refresh(index.physical, signal);
      await this.#idx().setLiveFilter(index, signal);
    }
    await this.#deleteBelow(index, version, signal);
  }

  /**
   * Removes documents older than a truncate (the alias filter hides them already). Deletes carry
   * the truncate's version, so they fail on a document a newer write replaced meanwhile.
   */
  async #deleteBelow(index: EsIndex, version: bigint, signal: AbortSignal): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      await this.#idx().refresh(index.physical, signal);
      const response = (await this.#call("find truncated documents", () =>
        this.#cli().search({ index: index.physical, size: 1000, _source: false, query: { range: { [VERSION_COLUMN]: { lt: version.toString() } } } }, { signal }),
      )) as { hits: { hits: { _id: string }[] } };
      const hits = response.hits.hits;
      if (hits.length === 0) return;
      const operations = NdjsonOperations.ofLines(hits.map((hit) => [encodeJson({ delete: { _index: index.physical, _id: hit._id, version, version_type: "external" } })]));
      await this.#bulk(operations, signal, { refresh: false });
    }
  }

  // --- indexes and schema evolution ----------------------------------------------------------

  async #createLive(indexes: TargetIndexes, target: string, schema: TableSchema, context: PlanContext, since: SinceOf, signal: AbortSignal): Promise<EsIndex> {
    if (this.#made.has(target) && !this.#goneReported.has(target)) {
      const holders = await this.#idx().aliasHolders(target, signal);
      if (holders.length === 0) throw indexMissing(target, context);
      // The alias is back on the table's own index (put right by hand since the target was loaded): write there.
      this.#targets.delete(target);
      const fresh = await this.#load(target, signal);
      if (fresh.live) return fresh.live;
      throw aliasOnOtherIndexes(target, holders, context);
    }
    const columns = initialColumns(schema, context, since);
    this.#checkNames(columns, context);
    const generation = ++indexes.maxGeneration;
    const live: EsIndex = { physical: physicalName(target, generation), target, role: "live", generation, truncateVersion: 0n, columns, owner: tableIdOf(schema) };
    try {
      await this.#idx().create(live, signal);
    } catch (error) {
      if (nameTaken(error)) throw takenRefusal(live, context, error);
      if (!alreadyExists(error)) throw error;
      // Another instance of the sink (same consumer group) created it first: use what is there.
      this.#targets.delete(target);
      const fresh = await this.#load(target, signal);
      if (fresh.live) return fresh.live;
      throw error;
    }
    indexes.live = live;
    this.#goneReported.delete(target);
    await this.#recordMade(target, signal);
    this.#logger.info({ target, physical: live.physical }, "created index");
    return live;
  }

  async #evolve(index: EsIndex, schema: TableSchema, context: PlanContext, since: SinceOf, signal: AbortSignal): Promise<void> {
    const plan = planColumns(index.columns.length === 0 ? null : index.columns, schema, context, since);
    if (index.columns.length > 0 && plan.added.length === 0 && plan.changed.length === 0) return;
    this.#checkNames(plan.added, context);
    for (const change of plan.changed) {
      if (!sameMapping(fieldMapping(change.from), fieldMapping(change.to))) {
        throw schemaUnsupported(
          `Elasticsearch cannot change the mapping of a field (${JSON.stringify(fieldMapping(change.from))} \u2192 ${JSON.stringify(fieldMapping(change.to))}); rebuild the index (sluice replay --rebuild)`,
          { ...context, column: change.name },
        );
      }
    }
    const previous = index.columns;
    // Added with a default: the documents already there get it (#fillDefaults), marked until done.
    index.columns = index.columns.length === 0 ? plan.columns : plan.columns.map((column) => (plan.added.includes(column) && column.since !== undefined ? { ...column, filling: true } : column));
    try {
      await this.#idx().putMappings(index, signal);
    } catch (error) {
      index.columns = previous;
      // A refused login or privilege is the sink's, not the table's: waited out by the runtime, never a halt.
      if (error instanceof SluiceError && (error.retriable || isAuthRefusal(error))) throw error;
      const change = { ...context, tableArg: `${schema.schema}.${schema.table}`, index: index.physical, added: plan.added.map((c) => c.name), widened: plan.changed.map((c) => c.name) };
      throw await mappingRefusal(error, change, (field) => this.#templateMapping(index.physical, field, signal));
    }
    this.#logger.info({ index: index.physical, added: plan.added.map((c) => c.name), widened: plan.changed.map((c) => c.name) }, "mapping evolved");
  }

  /** How the index templates matching `physical` map `field` (null: they do not). */
  async #templateMapping(physical: string, field: string, signal: AbortSignal): Promise<unknown> {
    const simulated = (await this.#cli().indices.simulateIndexTemplate({ name: physical }, { signal })) as { template?: { mappings?: unknown } };
    return fieldInMapping(simulated.template?.mappings, field);
  }

  #checkNames(columns: readonly TargetColumn[], context: PlanContext): void {
    for (const column of columns) {
      const problem = fieldNameProblem(column.name);
      if (problem) throw schemaUnsupported(problem, { ...context, column: column.name });
    }
  }

  async #load(target: string, signal: AbortSignal): Promise<TargetIndexes> {
    let indexes = this.#targets.get(target);
    if (!indexes) {
      indexes = await this.#idx().load(target, signal);
      const context = { sink: this.name, table: target };
      for (const index of [indexes.live, indexes.shadow]) if (index) await this.#fillDefaults(index, context, signal);
      // A live index made before the sink recorded the targets it made.
      if (indexes.live) await this.#recordMade(target, signal);
      this.#targets.set(target, indexes);
    }
    return indexes;
  }

  // --- offsets and plumbing ------------------------------------------------------------------

  async #ensureOffsetsIndex(client: Client, signal: AbortSignal): Promise<void> {
    const properties = { sink: { type: "keyword" }, topic: { type: "keyword" }, partition: { type: "integer" }, offset: { type: "long" }, topic_id: { type: "keyword" }, target: { type: "keyword" } } as const;
    const exists = await client.indices.exists({ index: OFFSETS_INDEX, expand_wildcards: "all" }, { signal });
    if (exists) {
      // An index created before Sluice recorded topic identities or made targets gets the fields (adding a field is allowed on a strict mapping).
      await client.indices.putMapping({ index: OFFSETS_INDEX, expand_wildcards: "all", properties: { topic_id: properties.topic_id, target: properties.target } }, { signal });
      return;
    }
    try {
      await client.indices.create({ index: OFFSETS_INDEX, settings: { index: { hidden: true } }, mappings: { dynamic: "strict", properties } }, { signal });
    } catch (error) {
      if (!alreadyExists(error)) throw error; // another sink created it in the meantime
    }
  }

  /** The targets this sink recorded making a live index for. */
  async #madeTargets(client: Client, signal: AbortSignal): Promise<Set<string>> {
    await client.indices.refresh({ index: OFFSETS_INDEX, expand_wildcards: "all" }, { signal });
    const response = (await client.search(
      { index: OFFSETS_INDEX, size: 10_000, _source: ["target"], query: { bool: { filter: [{ term: { sink: this.name } }, { exists: { field: "target" } }] } } },
      { signal },
    )) as { hits: { hits: { _source?: { target?: string } }[] } };
    return new Set(response.hits.hits.map((hit) => hit._source?.target).filter((target) => target !== undefined));
  }

  /** Records that the sink made a live index for `target` (once per target and process). */
  async #recordMade(target: string, signal: AbortSignal): Promise<void> {
    if (this.#made.has(target)) return;
    await this.#call("record a made target", () => this.#cli().index({ index: OFFSETS_INDEX, id: `${this.name}/targets/${target}`, document: { sink: this.name, target } }, { signal }));
    this.#made.add(target);
  }

  async #storeOffsets(offsets: readonly TopicPartitionOffset[], signal: AbortSignal): Promise<void> {
    if (offsets.length === 0) return;
    const operations = NdjsonOperations.ofLines(
      offsets.map((o) => [
        encodeJson({ index: { _index: OFFSETS_INDEX, _id: `${this.name}/${o.topic}/${o.partition}` } }),
        encodeJson({ sink: this.name, topic: o.topic, partition: o.partition, offset: o.offset, ...(this.#topicIds.has(o.topic) ? { topic_id: this.#topicIds.get(o.topic) } : {}) }),
      ]),
    );
    const outcomes = await this.#bulk(operations, signal, { refresh: false });
    const failed = outcomes.find((o) => o.kind === "failed");
    if (failed && failed.kind === "failed") {
      throw new ConnectionError(`Elasticsearch did not store the offsets: ${failed.reason}`, { code: "SINK_UNAVAILABLE", context: { component: "sink", sink: this.name } });
    }
  }

  /** The table's alias, claimed for it; refused (SINK_SCHEMA_UNSUPPORTED) when it is no index name or another table's is the same. */
  #target(table: TableId): string {
    // Index and alias names are lower case in Elasticsearch.
    const target = renderTarget(this.#config.target, table).toLowerCase();
    const problem = target === OFFSETS_INDEX ? `Elasticsearch index "${OFFSETS_INDEX}" holds the sinks' offsets` : targetNameProblem(target);
    if (problem !== null) {
      throw schemaUnsupported(`its target ${JSON.stringify(target)} cannot name an Elasticsearch alias and its indexes: ${problem}; give the sink a target template that makes a valid name, or leave the table out of its tables`, { sink: this.name, table: tableLabel(table) });
    }
    return this.#claims.claim(table, target);
  }

  async #call<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw requestError(error, this.name, what);
    }
  }

  /** One bulk request (split at bulk_bytes) with the sink's retry, logger and name. */
  #bulk(operations: NdjsonOperations, signal: AbortSignal, options: Pick<BulkOptions, "refresh" | "requireAlias" | "members" | "index" | "expectIndex">): Promise<ItemOutcome[]> {
    return runBulk(this.#cli(), operations, { maxBytes: this.#config.bulk_bytes, retry: this.#config.retry, signal, logger: this.#logger, sink: this.name, ...options });
  }

  /** An index found deleted while the sink runs: loaded again at the next write, where a retry makes a new one (the documented remedy). */
  #targetGone(target: string): void {
    this.#targets.delete(target);
    this.#goneReported.add(target);
  }

  #cli(): Client {
    if (!this.#client) throw new SluiceError("the Elasticsearch sink is not open", { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } });
    return this.#client;
  }

  #idx(): Indices {
    if (!this.#indices) throw new SluiceError("the Elasticsearch sink is not open", { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } });
    return this.#indices;
  }
}

/** A document's error in an mget answer. */
interface MgetError {
  readonly type?: string;
  readonly reason?: string;
}

/** The table's index or alias was deleted while the sink ran: halts the table (SINK_TARGET_BLOCKED) saying how to fill it again. */
function indexGone(reason: string, where: { sink: string; table: string; position?: string }): SluiceError {
  return targetBlocked(
    `Elasticsearch: ${reason} (the index or its alias was deleted while the sink ran; its documents are gone)`,
    where,
    "sluice replay --sink NAME --from-beginning --rebuild --table T fills the table again; sluice halted retry makes a new index holding only the changes from here on",
  );
}

/**
 * The table's index was closed by hand (POST <index>/_close): every write to it fails until it is opened again. Halts the
 * table under either on_error (dead-lettering would move all its changes there and leave the index stale once opened);
 * read again by itself (retry.blocked_interval), so it goes on once the index is open.
 */
function indexClosed(reason: string, where: { sink: string; table: string; position?: string }): SluiceError {
  return targetBlocked(
    `Elasticsearch: ${reason} (the index was closed by hand)`,
    where,
    "open it again (POST <index>/_open); the table is read again by itself (retry.blocked_interval) and goes on once the index is open; sluice halted retry reads it again at once",
    undefined,
    true,
  );
}

/**
 * The table's alias names another index besides the sink's (added by hand), none of them its write index: Elasticsearch
 * refuses every write through it. Halts the table under either on_error (dead-lettering would move all its changes there);
 * read again by itself (retry.blocked_interval), so it goes on once the alias is put right.
 */
function aliasAmbiguous(reason: string, where: { sink: string; table: string; position?: string }): SluiceError {
  return targetBlocked(
    `Elasticsearch: ${reason} (an index was added to the table's alias by hand)`,
    where,
    "remove the other index from the alias (POST _aliases with a remove action; GET _alias/<alias> lists them), or make it the table's index alone; the table is read again by itself (retry.blocked_interval) and goes on once the alias is put right; sluice halted retry reads it again at once",
    undefined,
    true,
  );
}

/**
 * The alias an operation named sent it to another index than the sink's (moved by hand while the sink ran; Elasticsearch
 * says so only in each item's `_index`). Halts the table before its offsets are stored, so the batch is written again once
 * the alias is put back. The sink keeps writing through the alias to the index it knows: a move is followed only by a
 * rebuild (which moves the alias itself) or, to one of the sink's own generations, at the next start.
 */
function aliasMoved(index: EsIndex, reason: string, where: { sink: string; table: string; position?: string }): SluiceError {
  const alias = writeAlias(index);
  return targetBlocked(
    `Elasticsearch: a write through the alias "${alias}" was ${reason} (the alias was moved by hand while the sink ran); the table's writes through it land in that index`,
    where,
    `put the alias back on "${index.physical}" alone (POST _aliases: remove it from the other index, add it to "${index.physical}"; GET _alias/${alias} shows where it is); the sink sets its own filter on the alias again (deleted and truncated rows hidden) before it writes. The table is read again by itself (retry.blocked_interval) and goes on once the alias is back, writing the batch again; sluice halted retry reads it again at once. The sink does not take over an index of your own (e.g. a reindex into another index and an alias swap), not at a restart either: at its start it follows the alias only to one of its generations "${index.target}__v<N>"; for a mapping change use sluice replay --rebuild`,
    undefined,
    true,
    "the target's alias sent writes to another index",
  );
}

/** The table's alias makes another index its write index (set by hand): the sink's writes through it would land there, without an error. */
function writeIndexElsewhere(alias: string, own: string, elsewhere: readonly string[], where: { sink: string; table: string }): SluiceError {
  return targetBlocked(
    `Elasticsearch: the alias "${alias}" makes ${elsewhere.map((name) => `"${name}"`).join(", ")} its write index (is_write_index: true, set by hand), not the table's index "${own}": writes through the alias would go there`,
    where,
    `take that index out of the alias or set is_write_index: false on it (POST _aliases; GET _alias/${alias} shows them); the table is read again by itself (retry.blocked_interval) and goes on once the alias is put right; sluice halted retry reads it again at once`,
    undefined,
    true,
  );
}

/**
 * The table's live index was made by the sink, and its alias (or the index with it) is gone: deleted by hand since the sink
 * last loaded its targets (while it was stopped, or while it ran: the write that found it gone halted the table). Made again empty and written from the sink's offsets on, it would silently hold only the later changes.
 */
function indexMissing(target: string, context: { sink: string; table: string }): SluiceError {
  return new SluiceError(
    `sink "${context.sink}", table ${context.table}: its Elasticsearch alias "${target}" (index "${target}__v<N>") is missing: the sink made it before and it was deleted since it last looked (the index or its alias, by hand); its documents are gone, and it is not made again empty to be filled only from the sink's offsets on; the table halts: fill it again from the topics (sluice replay --sink NAME --from-beginning --rebuild --table T --execute), then sluice halted retry`,
    { code: CATALOG_MISMATCH, retriable: false, context: { component: "sink", sink: context.sink, table: context.table } },
  );
}

/**
 * The table's live index was made by the sink, and its alias is now only on indexes that are not the table's (moved by
 * hand, e.g. to an operator's own index): writing through it would put the table's rows there, and making a new index
 * under it would mix them with that index's documents.
 */
function aliasOnOtherIndexes(target: string, holders: readonly string[], context: { sink: string; table: string }): SluiceError {
  return targetBlocked(
    `Elasticsearch: the alias "${target}" is on ${holders.map((name) => `"${name}"`).join(", ")} only, not on any of the table's own indexes ("${target}__v<N>", which the sink made): it was moved by hand; the sink writes nothing through it`,
    context,
    `put the alias back on the table's index (GET _cat/indices/${target}__v*?expand_wildcards=all lists them; POST _aliases), or take it off those indexes and fill the table again (sluice replay --sink NAME --from-beginning --rebuild --table T --execute); the table is read again by itself (retry.blocked_interval) and goes on once the alias is on its index; sluice halted retry reads it again at once`,
    undefined,
    true,
  );
}

/** The table's index runs an ingest pipeline on every write: it may drop, rename or change fields, and the index would no longer hold the source's rows. */
function ingestPipelineSet(indexes: readonly EsIndex[], context: { sink: string; table: string }): SluiceError {
  const named = indexes.map((index) => `"${index.physical}" runs ${(index.pipelines ?? []).join(" and ")}`).join("; ");
  const first = indexes[0]!.physical;
  return targetBlocked(
    `Elasticsearch: the index ${named} on every write (set on the index, or by an index template matching it): a pipeline can drop, rename or change fields, so the index would not hold the source's rows; the sink writes nothing there`,
    context,
    `take the setting off the index (PUT ${first}/_settings {"index.default_pipeline": null, "index.final_pipeline": null}) and out of the index template that sets it (GET _index_template/_simulate_index/${first} shows it); the table is read again by itself (retry.blocked_interval) and goes on once no pipeline is set; sluice halted retry reads it again at once`,
    undefined,
    true,
  );
}

/** The table's index keeps `_source` other than as written (an operator's template): the columns left out would be lost silently, and the sink reads stored documents back. */
function sourceAlteredRefusal(indexes: readonly EsIndex[], context: { sink: string; table: string }): SluiceError {
  const named = indexes.map((index) => `"${index.physical}" has ${(index.sourceAltered ?? []).join(" and ")}`).join("; ");
  const first = indexes[0]!.physical;
  return targetBlocked(
    `Elasticsearch: the index ${named} (from an index template matching it): it would not keep the documents as written, so values of the source's rows would be lost; the sink writes nothing there`,
    context,
    `take it out of the index template (GET _index_template/_simulate_index/${first} shows which one), then fill the table again into a new index (sluice replay --sink NAME --from-beginning --rebuild --table T --execute; a mapping's _source cannot be changed on an existing index); the table is read again by itself (retry.blocked_interval) and goes on once its index keeps _source as written`,
    undefined,
    true,
  );
}

/** The reason of a request Elasticsearch refused for a missing index (404 index_not_found_exception), else null. */
function indexNotFound(error: unknown): string | null {
  // The client's error may be wrapped more than once (a mapping change's refusal wraps the request's error).
  for (let cause = error, depth = 0; cause !== null && typeof cause === "object" && depth < 4; cause = (cause as { cause?: unknown }).cause, depth++) {
    const body = (cause as { body?: { error?: { type?: string; reason?: string } } }).body;
    if (body?.error?.type === "index_not_found_exception") return `404 index_not_found_exception: ${body.error.reason ?? ""}`;
  }
  return null;
}

/** The alias a write names (the live index's, or a rebuild's marker): a deleted index is then refused, not created again without mapping or alias. */
function writeAlias(index: EsIndex): string {
  return index.role === "live" ? index.target : rebuildAlias(index.target);
}

function tableIdOf(table: TableId): TableId {
  return { source: table.source, database: table.database, schema: table.schema, table: table.table };
}

/** Elasticsearch refused an index or alias because the name is another index's or alias's (invalid_alias_name_exception, invalid_index_name_exception). */
function nameTaken(error: unknown): boolean {
  const cause = (error as { cause?: unknown }).cause ?? error;
  const type = (cause as { body?: { error?: { type?: string } } }).body?.error?.type;
  return type === "invalid_alias_name_exception" || type === "invalid_index_name_exception";
}

/**
 * A name Elasticsearch has already, for an index or alias that is not this table's: another table's target or a generation of
 * it (the claims of this process do not know the targets written before it started), or an index of another tool.
 */
function takenRefusal(index: EsIndex, context: { sink: string; table: string }, cause: unknown): SluiceError {
  const names = index.role === "live" ? `index "${index.physical}" and alias "${index.target}"` : `index "${index.physical}"`;
  return schemaUnsupported(
    `its ${names} cannot be made: Elasticsearch has an index or alias of that name which is not this table's (another table's target or one of its generations "<target>__v<N>", or another tool's index) (${errorMessage(cause)}); give the sink a target template that tells them apart, or leave one out of its tables`,
    context,
    cause,
  );
}

/** A rebuild's index name found taken by an index this process did not make (Elasticsearch's resource_already_exists_exception). */
function shadowTaken(index: EsIndex, context: { sink: string; table: string }, cause: unknown): SluiceError {
  return rebuildState(
    `its rebuild's index "${index.physical}" cannot be made: Elasticsearch has an index of that name that this rebuild did not make (another process's rebuild of the sink, or another tool's index) (${errorMessage(cause)}); nothing of it was changed. Stop the other rebuild, or delete that index if it is no one's, and run the rebuild again`,
    context,
  );
}

function alreadyExists(error: unknown): boolean {
  const cause = (error as { cause?: unknown }).cause ?? error;
  return (cause as { body?: { error?: { type?: string } } }).body?.error?.type === "resource_already_exists_exception";
}

export function createElasticsearchSink(config: ElasticsearchSinkConfig, options: ElasticsearchSinkOptions): ElasticsearchSink {
  return new ElasticsearchSink(config, options);
}

/**
 * The filter of `sluice forget`'s documents: the subject column's value as text equal to `subject`, as the other sinks
 * compare (ErasureRequest). Decimals and unsigned 64-bit integers are doubles with their exact text in the `exact`
 * keyword subfield (mapping.ts): the whole text there ("5.0" as the column holds it, not "5" or "5.00"; the double would
 * match both, and 2^64-1 as 2^64-2). A uuid is a keyword in lower case. An integer's text has no '+', no leading zero,
 * no fraction, no space: any other subject names no document (null), where Elasticsearch would read "05" or "5.0" as 5
 * and erase another subject's values. Strings: see #subjectFilter. Other types are refused before (subject-column.ts).
 */
function subjectFilter(field: string, type: LogicalType, subject: string): object | null {
  if (type.kind === "string" || type.kind === "uuid") return { term: { [type.kind === "string" ? `${field}.keyword` : field]: subject } };
  if (hasExactText(type)) return { term: { [`${field}.exact`]: subject } };
  if (type.kind === "integer" && !/^(0|-?[1-9][0-9]*)$/.test(subject)) return null;
  return { match: { [field]: { query: subject, lenient: true } } };
}
