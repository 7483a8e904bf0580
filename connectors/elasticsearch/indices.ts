/**
 * Indexes and aliases of the Elasticsearch sink. Per table: indexes `<target>__v<N>` with strict
 * explicit mappings; the alias `<target>` (what users search) points at the live one with a filter
 * that hides tombstones and everything at or below the newest truncate; during a rebuild the
 * alias `<target>__rebuild` marks the shadow. Each index records its columns (logical types) and
 * truncate version in its mapping's `_meta.sluice`, so the state survives restarts.
 */
import { isDeepStrictEqual } from "node:util";
import type { Client } from "@elastic/elasticsearch";
import type { TableId } from "../contracts.ts";
import { DELETED_COLUMN, VERSION_COLUMN } from "../sinks/columns.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { generationOf } from "../sinks/naming.ts";
import { requestError } from "./bulk.ts";
import { fieldMapping } from "./mapping.ts";

export type Role = "live" | "shadow";

export interface EsIndex {
  readonly physical: string;
  readonly target: string;
  role: Role;
  readonly generation: number;
  truncateVersion: bigint;
  /** Empty while the index is not created yet (a shadow prepared before any schema was known). */
  columns: readonly TargetColumn[];
  /** The source table the index was made for (absent in indexes made before Sluice recorded it). */
  readonly owner?: TableId | undefined;
  /** Which sink process made the index (a rebuild's shadow, in its `_meta`): it knows its own index made by a create whose reply was lost. */
  readonly maker?: string | undefined;
  /** The ingest pipelines the index runs on every write (`index.default_pipeline`, `index.final_pipeline`: an operator's, often from a template), as `setting "name"`. */
  pipelines?: readonly string[];
  /** What makes the index keep `_source` other than as written (an operator's template: `_source` excludes, includes, disabled, synthetic), as `setting value`. */
  sourceAltered?: readonly string[];
}

type IndexSettings = {
  index?: { refresh_interval?: string; default_pipeline?: string; final_pipeline?: string; mode?: string; source?: { mode?: string }; mapping?: { source?: { mode?: string } } };
};
type SourceMapping = { _source?: { enabled?: unknown; includes?: unknown; excludes?: unknown; mode?: unknown } };

/** What in an index's mapping and settings keeps `_source` other than the document as written. */
export function sourceAlterations(mappings: SourceMapping | undefined, settings: IndexSettings | undefined): string[] {
  const out: string[] = [];
  const source = mappings?._source;
  if (source?.enabled === false || source?.enabled === "false") out.push("_source.enabled false");
  for (const key of ["includes", "excludes"] as const) {
    const fields = source?.[key];
    const keepsAll = key === "includes" && Array.isArray(fields) && fields.length === 1 && fields[0] === "*";
    if (Array.isArray(fields) && fields.length > 0 && !keepsAll) out.push(`_source.${key} ${JSON.stringify(fields)}`);
  }
  if (typeof source?.mode === "string" && source.mode !== "stored") out.push(`_source.mode ${JSON.stringify(source.mode)}`);
  // The source mode's setting under both names Elasticsearch has used, and the index modes whose default is a synthetic _source.
  for (const [name, mode] of [["index.mapping.source.mode", settings?.index?.mapping?.source?.mode], ["index.source.mode", settings?.index?.source?.mode]] as const) {
    if (typeof mode === "string" && mode !== "stored") out.push(`${name} ${JSON.stringify(mode)}`);
  }
  const indexMode = settings?.index?.mode;
  const sourceModeSet = [settings?.index?.mapping?.source?.mode, settings?.index?.source?.mode, source?.mode].some((mode) => typeof mode === "string");
  if ((indexMode === "logsdb" || indexMode === "time_series") && !sourceModeSet) out.push(`index.mode ${JSON.stringify(indexMode)} (a synthetic _source by default)`);
  return out;
}

/** The ingest pipelines an index's settings make it run on every write ("_none" is none). */
export function ingestPipelines(settings: IndexSettings | undefined): string[] {
  const out: string[] = [];
  for (const setting of ["default_pipeline", "final_pipeline"] as const) {
    const name = settings?.index?.[setting];
    if (typeof name === "string" && name !== "" && name !== "_none") out.push(`index.${setting} ${JSON.stringify(name)}`);
  }
  return out;
}

export interface TargetIndexes {
  live: EsIndex | null;
  shadow: EsIndex | null;
  /** Highest generation of any index of the target that exists. */
  maxGeneration: number;
}

interface SluiceMeta {
  readonly target: string;
  readonly generation: number;
  readonly truncateVersion: string;
  readonly columns: readonly TargetColumn[];
  readonly table?: TableId;
  readonly maker?: string;
}

const REBUILD_SUFFIX = "__rebuild";
export const rebuildAlias = (target: string) => `${target}${REBUILD_SUFFIX}`;

/** The names a target's indexes and aliases take besides its own: generations and the rebuild alias. */
export const DERIVED_NAME_SUFFIX = /__(v[1-9]\d*|rebuild)$/;

/** Room left in a 255-byte index name for the longest suffix "__v<N>" of a generation. */
const MAX_TARGET_BYTES = 255 - "__v".length - 10;

/** Why `target` (lower case) cannot name an alias and its indexes "<target>__v<N>" in Elasticsearch, or null. */
export function targetNameProblem(target: string): string | null {
  if (target === "" || target === "." || target === "..") return "Elasticsearch index names cannot be empty, \".\" or \"..\"";
  if (/^[-_+.]/.test(target)) return "Elasticsearch index names cannot start with -, _, + or . (hidden and system indexes start with .)";
  const bad = /[\\/*?"<>| ,#:]/.exec(target);
  if (bad) return `Elasticsearch index names cannot hold ${JSON.stringify(bad[0])} (nor any of \\ / * ? " < > | , # : or a space)`;
  if (/[\u0000-\u001f\u007f]/.test(target)) return "Elasticsearch index names cannot hold control characters";
  if (Buffer.byteLength(target) > MAX_TARGET_BYTES) return `Elasticsearch index names have at most 255 bytes, and the target's indexes add "__v<N>": at most ${MAX_TARGET_BYTES} bytes, it has ${Buffer.byteLength(target)}`;
  return null;
}

/**
 * Of a GET _alias/<target> answer (index name -> its aliases; an alias missing answers 404 with no index), the indexes
 * other than the live one that the alias makes its write index (is_write_index: true). Elasticsearch sends writes
 * through an alias on several indexes to that one, without an error: the sink's would land in an operator's index.
 */
export function foreignWriteIndexes(answer: unknown, index: Pick<EsIndex, "physical" | "target">): string[] {
  if (typeof answer !== "object" || answer === null) return [];
  const foreign: string[] = [];
  for (const [name, info] of Object.entries(answer as Record<string, unknown>)) {
    const aliases = (info as { aliases?: Record<string, { is_write_index?: unknown } | undefined> } | null)?.aliases;
    if (name !== index.physical && aliases?.[index.target]?.is_write_index === true) foreign.push(name);
  }
  return foreign.sort();
}

/**
 * Of a GET _alias/<target> answer, whether the alias is on the live index with a filter other than aliasFilter (none, or
 * another: Elasticsearch answers the filter as it was given). The alias not on it: false (nothing to put right there).
 */
export function aliasFilterWrong(answer: unknown, index: Pick<EsIndex, "physical" | "target" | "truncateVersion">): boolean {
  if (typeof answer !== "object" || answer === null) return false;
  const aliases = ((answer as Record<string, unknown>)[index.physical] as { aliases?: Record<string, { filter?: unknown } | undefined> } | undefined)?.aliases;
  const alias = aliases?.[index.target];
  return alias !== undefined && !isDeepStrictEqual(alias.filter, aliasFilter(index.truncateVersion));
}

/** What the alias users search shows: no tombstones, nothing at or below the newest truncate. */
export function aliasFilter(truncateVersion: bigint): Record<string, unknown> {
  const filter: Record<string, unknown>[] = truncateVersion > 0n ? [{ range: { [VERSION_COLUMN]: { gt: truncateVersion.toString() } } }] : [];
  return { bool: { must_not: [{ term: { [DELETED_COLUMN]: true } }], filter } };
}

export function indexMappings(index: EsIndex): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const column of index.columns) properties[column.name] = fieldMapping(column.type);
  properties[VERSION_COLUMN] = { type: "long" };
  properties[DELETED_COLUMN] = { type: "boolean" };
  return { dynamic: "strict", _meta: { sluice: meta(index) }, properties };
}

function meta(index: EsIndex): SluiceMeta {
  const owner = index.owner === undefined ? {} : { table: { source: index.owner.source, database: index.owner.database, schema: index.owner.schema, table: index.owner.table } };
  return { target: index.target, generation: index.generation, truncateVersion: index.truncateVersion.toString(), columns: index.columns, ...owner, ...(index.maker === undefined ? {} : { maker: index.maker }) };
}

export class Indices {
  readonly #client: Client;
  readonly #sink: string;
  /** The `index.refresh_interval` of every index (e.g. "200ms", "-1"), or null to leave it alone. */
  readonly #refreshInterval: string | null;

  constructor(client: Client, sink: string, refreshInterval: string | null) {
    this.#client = client;
    this.#sink = sink;
    this.#refreshInterval = refreshInterval;
  }

  async load(target: string, signal: AbortSignal): Promise<TargetIndexes> {
    const existing = (await this.#call("list indexes", () =>
      this.#client.indices.get({ index: `${target}__v*`, expand_wildcards: "all", ignore_unavailable: true, allow_no_indices: true }, { signal }),
    )) as Record<string, { aliases?: Record<string, unknown>; mappings?: { _meta?: { sluice?: SluiceMeta } } & SourceMapping; settings?: IndexSettings }>;
    const out: TargetIndexes = { live: null, shadow: null, maxGeneration: 0 };
    const unaliased: { name: string; generation: number }[] = [];
    for (const [name, info] of Object.entries(existing)) {
      const generation = generationOf(target, name);
      if (generation === null) continue;
      out.maxGeneration = Math.max(out.maxGeneration, generation);
      const aliases = Object.keys(info.aliases ?? {});
      const role: Role | null = aliases.includes(target) ? "live" : aliases.includes(rebuildAlias(target)) ? "shadow" : null;
      if (role === null) {
        unaliased.push({ name, generation });
        continue;
      }
      if (this.#refreshInterval !== null && info.settings?.index?.refresh_interval !== this.#refreshInterval) await this.#setRefreshInterval(name, this.#refreshInterval, signal);
      const sluice = info.mappings?._meta?.sluice;
      out[role] = {
        physical: name,
        target,
        role,
        generation,
        truncateVersion: BigInt(sluice?.truncateVersion ?? "0"),
        columns: sluice?.columns ?? [],
        ...(sluice?.table === undefined ? {} : { owner: sluice.table }),
        pipelines: ingestPipelines(info.settings),
        sourceAltered: sourceAlterations(info.mappings, info.settings),
      };
    }
    // An older generation without alias was the live index of a swap stopped (kill -9) after its alias moved, before the index was deleted.
    const live = out.live;
    if (live) for (const old of unaliased.filter((index) => index.generation < live.generation)) await this.#deleteIndex(old.name, signal);
    return out;
  }

  /** Every index that carries a rebuild marker (any target's, any sink's): its name, what its `_meta` says and when it was made. */
  async shadows(signal: AbortSignal): Promise<{ physical: string; target: string; owner: TableId | null; createdAtMs: number | null }[]> {
    const marked = (await this.#call("list rebuild aliases", () =>
      this.#client.indices.getAlias({ name: `*${REBUILD_SUFFIX}`, expand_wildcards: "all", ignore_unavailable: true, allow_no_indices: true }, { signal }),
    )) as Record<string, { aliases?: Record<string, unknown> }>;
    const names = Object.keys(marked);
    if (names.length === 0) return [];
    const existing = (await this.#call("list indexes", () =>
      this.#client.indices.get({ index: names, expand_wildcards: "all", ignore_unavailable: true, allow_no_indices: true }, { signal }),
    )) as Record<string, { mappings?: { _meta?: { sluice?: SluiceMeta } }; settings?: { index?: { creation_date?: string } } }>;
    const out: { physical: string; target: string; owner: TableId | null; createdAtMs: number | null }[] = [];
    for (const [physical, info] of Object.entries(existing)) {
      const alias = Object.keys(marked[physical]?.aliases ?? {}).find((name) => name.endsWith(REBUILD_SUFFIX));
      if (alias === undefined) continue;
      const target = alias.slice(0, -REBUILD_SUFFIX.length);
      if (generationOf(target, physical) === null) continue;
      const created = Number(info.settings?.index?.creation_date);
      out.push({ physical, target, owner: info.mappings?._meta?.sluice?.table ?? null, createdAtMs: Number.isFinite(created) && created > 0 ? created : null });
    }
    return out.sort((a, b) => (a.physical < b.physical ? -1 : 1));
  }

  /** Creates the index with its alias in one request (live: the filtered user alias; shadow: the rebuild marker). */
  async create(index: EsIndex, signal: AbortSignal): Promise<void> {
    const aliases = index.role === "live" ? { [index.target]: { filter: aliasFilter(index.truncateVersion) } } : { [rebuildAlias(index.target)]: {} };
    await this.#call("create index", () =>
      this.#client.indices.create(
        { index: index.physical, mappings: indexMappings(index) as never, aliases: aliases as never, ...(this.#refreshInterval !== null ? { settings: { index: { refresh_interval: this.#refreshInterval } } } : {}) },
        { signal },
      ),
    );
    // An index template matching the index may have given it a pipeline or a _source filter.
    const made = (await this.#call("read index", () =>
      this.#client.indices.get({ index: index.physical, expand_wildcards: "all" }, { signal }),
    )) as Record<string, { mappings?: SourceMapping; settings?: IndexSettings }>;
    index.pipelines = ingestPipelines(made[index.physical]?.settings);
    index.sourceAltered = sourceAlterations(made[index.physical]?.mappings, made[index.physical]?.settings);
  }

  /** Whether the index exists under the alias with `maker` in its `_meta` (Indices.create wrote it so), read by its name alone. */
  async madeBy(physical: string, alias: string, maker: string, signal: AbortSignal): Promise<boolean> {
    const found = (await this.#call("read index", () =>
      this.#client.indices.get({ index: physical, expand_wildcards: "all", ignore_unavailable: true, allow_no_indices: true }, { signal }),
    )) as Record<string, { aliases?: Record<string, unknown>; mappings?: { _meta?: { sluice?: SluiceMeta } } }>;
    const info = found[physical];
    return info !== undefined && Object.hasOwn(info.aliases ?? {}, alias) && info.mappings?._meta?.sluice?.maker === maker;
  }

  async #setRefreshInterval(index: string, interval: string, signal: AbortSignal): Promise<void> {
    await this.#call("update settings", () => this.#client.indices.putSettings({ index, settings: { index: { refresh_interval: interval } } }, { signal }));
  }

  /** Adds the fields of new columns and records columns and truncate version in `_meta` (existing fields cannot change). */
  async putMappings(index: EsIndex, signal: AbortSignal): Promise<void> {
    const { properties, _meta } = indexMappings(index) as { properties: Record<string, unknown>; _meta: unknown };
    await this.#call("update mapping", () =>
      this.#client.indices.putMapping({ index: index.physical, properties: properties as never, _meta: _meta as never }, { signal }),
    );
  }

  async setLiveFilter(index: EsIndex, signal: AbortSignal): Promise<void> {
    await this.#call("update alias", () =>
      this.#client.indices.updateAliases({ actions: [{ add: { index: index.physical, alias: index.target, filter: aliasFilter(index.truncateVersion) as never } }] }, { signal }),
    );
  }

  /** Atomically: the user alias moves from `from` (if any) to `to` with `to`'s filter; the rebuild marker goes. */
  async swap(from: EsIndex | null, to: EsIndex, signal: AbortSignal): Promise<void> {
    const actions: Record<string, unknown>[] = [
      { add: { index: to.physical, alias: to.target, filter: aliasFilter(to.truncateVersion) } },
      { remove: { index: to.physical, alias: rebuildAlias(to.target) } },
    ];
    if (from) actions.push({ remove: { index: from.physical, alias: from.target } });
    await this.#call("swap aliases", () => this.#client.indices.updateAliases({ actions: actions as never }, { signal }));
  }

  async remove(index: EsIndex, signal: AbortSignal): Promise<void> {
    await this.#deleteIndex(index.physical, signal);
  }

  async #deleteIndex(name: string, signal: AbortSignal): Promise<void> {
    await this.#call("delete index", () => this.#client.indices.delete({ index: name, ignore_unavailable: true }, { signal }));
  }

  /** Indexes besides the live `index` that its user alias makes its write index (GET _alias/<target>): none unless set by hand. */
  /** The index's alias: the other indexes it makes its write index, and whether it is on the index with another filter than the sink's. */
  async readAlias(index: EsIndex, signal: AbortSignal): Promise<{ elsewhere: string[]; filterWrong: boolean }> {
    const response = await this.#call("read alias", () => this.#client.indices.getAlias({ name: index.target, expand_wildcards: "all" }, { signal, ignore: [404] }));
    return { elsewhere: foreignWriteIndexes(response as unknown, index), filterWrong: aliasFilterWrong(response as unknown, index) };
  }

  /** The indexes the alias `name` is on (GET _alias/<name>), sorted; none when it is missing. */
  async aliasHolders(name: string, signal: AbortSignal): Promise<string[]> {
    const response = await this.#call("read alias", () => this.#client.indices.getAlias({ name, expand_wildcards: "all" }, { signal, ignore: [404] }));
    if (typeof response !== "object" || response === null || "error" in response) return [];
    return Object.keys(response).sort();
  }

  /** Documents the index's user alias would show (its filter), after a refresh so recent writes count. */
  async countCurrent(index: EsIndex, signal: AbortSignal): Promise<number> {
    await this.refresh(index.physical, signal);
    const response = await this.#call("count", () => this.#client.count({ index: index.physical, query: aliasFilter(index.truncateVersion) as never }, { signal }));
    return response.count;
  }

  async refresh(index: string, signal: AbortSignal): Promise<void> {
    await this.#call("refresh", () => this.#client.indices.refresh({ index, ignore_unavailable: true }, { signal }));
  }

  async #call<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw requestError(error, this.#sink, what);
    }
  }
}
