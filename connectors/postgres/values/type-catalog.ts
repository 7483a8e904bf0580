/**
 * What Sluice knows about every type in the database (pg_type): how to decode a column's text
 * and which `format_type` target names it in TableSchema.dbType. Domains resolve to their base
 * type, enums are text, arrays decode element by element, anything else (hstore, ranges,
 * geometric types, extension types) stays its text.
 */
import type { ColumnValue } from "../../contracts.ts";
import { parseArrayLiteral } from "./array-literal.ts";
import type { ArrayText } from "./array-literal.ts";
import { asText, BUILTIN_SCALAR_DECODERS } from "./scalars.ts";
import type { TextDecoder } from "./scalars.ts";

export interface PgTypeRow {
  readonly oid: number;
  readonly name: string;
  readonly namespace: string;
  /** pg_type.typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  readonly kind: string;
  /** pg_type.typcategory: "A" for arrays. */
  readonly category: string;
  readonly elementOid: number;
  readonly baseTypeOid: number;
  readonly baseTypeModifier: number;
  readonly delimiter: string;
}

/** The SQL that lists the rows TypeCatalog needs. */
export const TYPE_CATALOG_SQL = `
  SELECT t.oid::int8 AS oid, t.typname AS name, n.nspname AS namespace, t.typtype AS kind,
         t.typcategory AS category, t.typelem::int8 AS element_oid, t.typbasetype::int8 AS base_type_oid,
         t.typtypmod AS base_type_modifier, t.typdelim AS delimiter
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace`;

export function typeRowFromSql(row: Record<string, unknown>): PgTypeRow {
  return {
    oid: Number(row["oid"]),
    name: String(row["name"]),
    namespace: String(row["namespace"]),
    kind: String(row["kind"]),
    category: String(row["category"]),
    elementOid: Number(row["element_oid"]),
    baseTypeOid: Number(row["base_type_oid"]),
    baseTypeModifier: Number(row["base_type_modifier"]),
    delimiter: String(row["delimiter"]),
  };
}

/** How a column's type is named in TableSchema.dbType: a `format_type(oid, typmod)` call, or a fixed name. */
export type TypeNameTarget =
  | { readonly format: { readonly oid: number; readonly modifier: number }; readonly suffix: string }
  | { readonly fixed: string };

const MAX_DOMAIN_DEPTH = 32;

export class TypeCatalog {
  private readonly types = new Map<number, PgTypeRow>();
  private readonly decoders = new Map<number, TextDecoder>();

  constructor(rows: Iterable<PgTypeRow>) {
    for (const row of rows) this.types.set(row.oid, row);
  }

  has(oid: number): boolean {
    return this.types.has(oid) || BUILTIN_SCALAR_DECODERS.has(oid);
  }

  get(oid: number): PgTypeRow | undefined {
    return this.types.get(oid);
  }

  /** The type a domain (or a domain over a domain) stands for; other types are themselves. */
  resolveDomain(oid: number, modifier: number): { oid: number; modifier: number } {
    let current = { oid, modifier };
    for (let depth = 0; depth < MAX_DOMAIN_DEPTH; depth++) {
      const row = this.types.get(current.oid);
      if (row === undefined || row.kind !== "d") return current;
      current = { oid: row.baseTypeOid, modifier: current.modifier === -1 ? row.baseTypeModifier : current.modifier };
    }
    return current;
  }

  decoderFor(oid: number): TextDecoder {
    let decoder = this.decoders.get(oid);
    if (decoder === undefined) {
      decoder = this.buildDecoder(oid, 0);
      this.decoders.set(oid, decoder);
    }
    return decoder;
  }

  private buildDecoder(oid: number, depth: number): TextDecoder {
    const builtin = BUILTIN_SCALAR_DECODERS.get(oid);
    if (builtin !== undefined) return builtin;
    const row = this.types.get(oid);
    if (row === undefined || depth > MAX_DOMAIN_DEPTH) return asText;
    if (row.kind === "d") return this.buildDecoder(row.baseTypeOid, depth + 1);
    if (row.category === "A" && row.elementOid !== 0) {
      const element = this.types.get(row.elementOid);
      return arrayDecoder(this.buildDecoder(row.elementOid, depth + 1), element?.delimiter ?? ",");
    }
    return asText;
  }

  /** How to name a column of this type in TableSchema.dbType. */
  nameTarget(oid: number, modifier: number): TypeNameTarget {
    const resolved = this.resolveDomain(oid, modifier);
    const row = this.types.get(resolved.oid);
    if (row?.kind === "e") return { fixed: "enum" };
    if (row !== undefined && row.category === "A" && row.elementOid !== 0) {
      const element = this.types.get(row.elementOid);
      if (element !== undefined && (element.kind === "d" || element.kind === "e")) {
        const inner = this.nameTarget(row.elementOid, resolved.modifier);
        return "fixed" in inner ? { fixed: `${inner.fixed}[]` } : { format: inner.format, suffix: `${inner.suffix}[]` };
      }
    }
    return { format: resolved, suffix: "" };
  }
}

function arrayDecoder(element: TextDecoder, delimiter: string): TextDecoder {
  const convert = (items: ArrayText): ColumnValue[] =>
    items.map((item) => (item === null ? null : typeof item === "string" ? element(item) : convert(item)));
  return (text) => convert(parseArrayLiteral(text, delimiter));
}
