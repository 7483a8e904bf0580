/**
 * What to say when Elasticsearch refuses a mapping change (a schema change's added or widened fields). The way out
 * depends on why: a field mapped by hand on the index is cured by a rebuild (which maps a new index afresh), but an
 * index template that maps the field, or the index's field limit, refuse the rebuild's new index the same way, and a
 * refused login or privilege is not the mapping's at all.
 */
import { errorMessage, isAuthRefusal, schemaUnsupported, targetBlocked } from "../sinks/errors.ts";

export interface MappingChange {
  readonly sink: string;
  /** The table's label (source.schema.table). */
  readonly table: string;
  /** The table as `sluice replay --table` takes it (schema.table). */
  readonly tableArg: string;
  /** The index written (its physical name). */
  readonly index: string;
  readonly added: readonly string[];
  readonly widened: readonly string[];
}

/** The mapping an index template matching the index gives a field, when one does (null: none, or not known). */
export type TemplateFieldMapping = (field: string) => Promise<unknown>;

interface EsErrorBody {
  readonly status: number | undefined;
  readonly type: string | undefined;
  readonly reasons: readonly string[];
}

/** Elasticsearch's answer inside `error` or its causes (the client's ResponseError keeps it in meta). */
function esError(error: unknown): EsErrorBody {
  for (let current = error, depth = 0; current !== null && typeof current === "object" && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const meta = (current as { meta?: { statusCode?: unknown; body?: unknown } }).meta;
    const body = meta?.body as { error?: { type?: unknown; reason?: unknown; root_cause?: { reason?: unknown }[] }; status?: unknown } | undefined;
    if (body?.error === undefined) continue;
    const reasons = [body.error.reason, ...(body.error.root_cause ?? []).map((cause) => cause.reason)].filter((reason): reason is string => typeof reason === "string");
    const status = typeof meta?.statusCode === "number" ? meta.statusCode : typeof body.status === "number" ? body.status : undefined;
    return { status, type: typeof body.error.type === "string" ? body.error.type : undefined, reasons };
  }
  return { status: undefined, type: undefined, reasons: [] };
}

/** A login or privilege refusal (401, security_exception): the sink's user, not the mapping. Not any 403: a cluster block answers 403 too. */
export function refusesLogin(error: unknown): boolean {
  if (isAuthRefusal(error)) return true;
  const { status, type } = esError(error);
  return status === 401 || type === "security_exception";
}

/** A word a POSIX shell takes as is, or the word single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_.,:/@%+=-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

const FIELD_LIMIT = /Limit of total fields \[(\d+)\]/;
const NAMED_FIELD = /(?:mapper|field) \[([^\]]+)\]/;

/**
 * The error a refused mapping change fails with: the auth error itself; SINK_SCHEMA_UNSUPPORTED naming the field limit,
 * the index template, or (a field mapped by hand) the rebuild to run; otherwise Elasticsearch's words without advice.
 */
export async function mappingRefusal(error: unknown, change: MappingChange, templateMapping: TemplateFieldMapping): Promise<Error> {
  if (refusesLogin(error)) return error instanceof Error ? error : new Error(errorMessage(error));
  const context = { sink: change.sink, table: change.table };
  // index.blocks.write or the flood-stage disk block: the table halts and goes on by itself once it is lifted, as for a write.
  if (esError(error).type === "cluster_block_exception") return targetBlocked(`Elasticsearch refused the mapping change of index ${change.index}: ${errorMessage(error)}`, context, undefined, error);
  const fields = [
    change.added.length > 0 ? `adding ${change.added.map((name) => JSON.stringify(name)).join(", ")}` : "",
    change.widened.length > 0 ? `widening ${change.widened.map((name) => JSON.stringify(name)).join(", ")}` : "",
  ].filter((part) => part !== "");
  const refused = `Elasticsearch refused the mapping change (${fields.join(", ") || "no field"}): ${errorMessage(error)}; `;
  const { type, reasons } = esError(error);
  const limit = reasons.map((reason) => FIELD_LIMIT.exec(reason)).find((match) => match !== null);
  if (limit) {
    return schemaUnsupported(
      `${refused}the index has reached its field limit (index.mapping.total_fields.limit, ${limit[1]}), and a rebuild's new index would meet the same limit: ` +
        `raise it on the index (PUT ${change.index}/_settings {"index.mapping.total_fields.limit": ...}, and in the index template that sets it, if one does) ` +
        `or leave columns out of the sink (its tables' columns filter), then sluice halted retry`,
      context,
      error,
    );
  }
  const field = type === "illegal_argument_exception" || type === "mapper_parsing_exception" ? reasons.map((reason) => NAMED_FIELD.exec(reason)).find((match) => match !== null)?.[1] : undefined;
  if (field === undefined) return schemaUnsupported(`${refused}fix the cause, then sluice halted retry`, context, error);
  const fromTemplate = await templateMapping(field).catch(() => null);
  if (fromTemplate !== null && fromTemplate !== undefined) {
    return schemaUnsupported(
      `${refused}an index template matching ${change.index} maps the field "${field}" (${JSON.stringify(fromTemplate)}; GET _index_template/_simulate_index/${change.index} shows it), ` +
        `so a rebuild's new index would be refused the same way: take the field out of the template (or its index_patterns off the sink's indexes), ` +
        `then rebuild the table's index (sluice replay --sink ${shellWord(change.sink)} --from-beginning --rebuild --table ${shellWord(change.tableArg)} --execute) and sluice halted retry`,
      context,
      error,
    );
  }
  return schemaUnsupported(
    `${refused}the index's mapping holds the field "${field}", which Sluice did not put there (mapped by hand): ` +
      `rebuild the table's index, which maps it afresh (sluice replay --sink ${shellWord(change.sink)} --from-beginning --rebuild --table ${shellWord(change.tableArg)} --execute), then sluice halted retry`,
    context,
    error,
  );
}

/** The mapping an object path (a.b.c) has in a mapping's properties, or null. */
export function fieldInMapping(mappings: unknown, field: string): unknown {
  let properties = (mappings as { properties?: Record<string, unknown> } | null | undefined)?.properties;
  const parts = field.split(".");
  for (let i = 0; i < parts.length; i++) {
    const found = properties?.[parts[i]!] as { properties?: Record<string, unknown> } | undefined;
    if (found === undefined) return null;
    if (i === parts.length - 1) return found;
    properties = found.properties;
  }
  return null;
}
