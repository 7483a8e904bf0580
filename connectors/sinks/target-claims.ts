/**
 * Which source table each of a sink's targets belongs to, so that two tables never write one
 * target. Table names come from whoever may create tables in a captured schema: the `target`
 * template can give two tables one name ("a_b"."c" and "a"."b_c" under "{schema}_{table}"), a
 * target can say the same as another to the target system ("Up" and "up" in DuckDB, which
 * ignores case), or be one of another target's generations ("x__v1" beside "x"). The table that
 * comes second is refused with SINK_SCHEMA_UNSUPPORTED naming both (the runtime halts it only).
 */
import type { TableId } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { schemaUnsupported } from "./errors.ts";
import { tableLabel } from "./naming.ts";

/** The names a target's tables or indexes take beside its own: its generations "<target>__v<N>". */
const GENERATION_SUFFIX = /__v[1-9]\d*$/;

interface Claim {
  readonly target: string;
  /** Null for a target found in the sink's storage whose table has not written since this process started. */
  table: TableId | null;
}

export class TargetClaims {
  readonly #sink: string;
  /** How the target system compares names (DuckDB: without case). */
  readonly #fold: (name: string) => string;
  readonly #why: string;
  readonly #derived: RegExp;
  /** By folded target. */
  readonly #claims = new Map<string, Claim>();
  /** Folded targets without their generation suffix -> the targets that look like a generation of them. */
  readonly #generationLike = new Map<string, string[]>();

  /**
   * `fold`: the name as the target system compares it; `why` says how (appended to a refusal); `derived`: the suffixes of the
   * names the sink makes from a target (default its generations "__v<N>"; Elasticsearch's rebuild alias "__rebuild" too).
   */
  constructor(sink: string, options: { fold?: (name: string) => string; why?: string; derived?: RegExp } = {}) {
    this.#sink = sink;
    this.#derived = options.derived ?? GENERATION_SUFFIX;
    this.#fold = options.fold ?? ((name) => name);
    this.#why = options.why ?? "";
  }

  /**
   * A target the sink's storage holds already (from its catalog), with the table it was claimed for when the storage recorded it:
   * another table is refused; without one, the first table to write it claims it.
   */
  know(target: string, table: TableId | null = null): void {
    const key = this.#fold(target);
    const claim = this.#claims.get(key);
    if (claim === undefined) this.#add(key, { target, table });
    else if (claim.table === null && claim.target === target) claim.table = table;
  }

  /**
   * The table the sink's storage says `target` was made for, learnt after `table` claimed it (Elasticsearch reads it with the
   * target's indexes): the storage's table keeps it, and `table`, when another, is refused.
   */
  confirm(table: TableId, target: string, owner: TableId): void {
    const claim = this.#claims.get(this.#fold(target));
    if (claim === undefined || claim.target !== target) return;
    claim.table = owner;
    if (!sameTable(owner, table)) throw this.#refusal(table, `its target "${target}" is the target of table ${otherLabel(owner, table)}`);
  }

  /** `target` when `table` has claimed it, else null (not yet claimed, or refused): a check that never throws. */
  owned(table: TableId, target: string): string | null {
    const claim = this.#claims.get(this.#fold(target));
    return claim !== undefined && claim.target === target && claim.table !== null && sameTable(claim.table, table) ? target : null;
  }

  /** `target` for `table`, claimed for it; throws SINK_SCHEMA_UNSUPPORTED when another table has it, or one it cannot be told from. */
  claim(table: TableId, target: string): string {
    const key = this.#fold(target);
    const claim = this.#claims.get(key);
    if (claim !== undefined && claim.target === target && (claim.table === null || sameTable(claim.table, table))) {
      claim.table ??= table;
      return target;
    }
    if (claim !== undefined) {
      if (claim.target === target) throw this.#refusal(table, `its target "${target}" is the target of table ${otherLabel(claim.table!, table)}`);
      throw this.#refusal(table, `its target "${target}" is the same name as ${holder(claim, table)} to the sink${this.#why}`);
    }
    const base = target.replace(this.#derived, "");
    const generationOf = base === target ? undefined : this.#claims.get(this.#fold(base));
    if (generationOf !== undefined) throw this.#refusal(table, `its target "${target}" is a name the sink gives to a generation of ${holder(generationOf, table)} ("<target>__v<N>")`);
    const generation = this.#generationLike.get(key)?.[0];
    if (generation !== undefined) throw this.#refusal(table, `the sink's names for generations of its target "${target}" ("<target>__v<N>") would take ${holder(this.#claims.get(this.#fold(generation))!, table)}`);
    this.#add(key, { target, table });
    return target;
  }

  #add(key: string, claim: Claim): void {
    this.#claims.set(key, claim);
    const base = claim.target.replace(this.#derived, "");
    if (base === claim.target) return;
    const baseKey = this.#fold(base);
    this.#generationLike.set(baseKey, [...(this.#generationLike.get(baseKey) ?? []), claim.target]);
  }

  #refusal(table: TableId, reason: string): SluiceError {
    return schemaUnsupported(`${reason}; two tables cannot write one target: give the sink a target template that tells them apart, or leave one out of its tables`, { sink: this.#sink, table: tableLabel(table) });
  }
}

function holder(claim: Claim, table: TableId): string {
  return claim.table === null ? `"${claim.target}", a target the sink holds already` : `"${claim.target}", the target of table ${otherLabel(claim.table, table)}`;
}

/**
 * The label of the table holding a target `table` was refused, with both databases when they are
 * all that tells the two apart (labels leave the database out: a PostgreSQL source whose database
 * changed, an erasure named with another database; MySQL's databases are its schemas, so named).
 */
function otherLabel(owner: TableId, table: TableId): string {
  const label = tableLabel(owner);
  if (label !== tableLabel(table) || owner.database === table.database) return label;
  return `${label} in database ${JSON.stringify(owner.database)} (this one is in database ${JSON.stringify(table.database)})`;
}

function sameTable(a: TableId, b: TableId): boolean {
  return a.source === b.source && a.database === b.database && a.schema === b.schema && a.table === b.table;
}
