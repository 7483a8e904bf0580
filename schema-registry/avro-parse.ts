/**
 * Parses and validates Avro schemas (JSON) into a resolved type graph: named types are resolved to
 * their definitions (recursive types point back to themselves), names are fully qualified, and
 * every rule of the Avro specification that makes a schema unusable is checked (names, duplicate
 * definitions and fields, enum symbols, fixed sizes, union rules, default values).
 */
import { AVRO_PRIMITIVES } from "./avro-schema.ts";
import type { AvroPrimitiveName } from "./avro-schema.ts";
import { isValidAvroName, isValidFullName, isValidNamespace, namespaceOf } from "./avro-names.ts";
import { isValidDefault } from "./avro-defaults.ts";
import { jsonShapeProblem } from "../runtime/json-shape.ts";
import type { JsonShapeLimits } from "../runtime/json-shape.ts";
import { InvalidSchemaError } from "./schema-errors.ts";

export type Props = Readonly<Record<string, unknown>>;

export interface AvroPrimitive {
  readonly kind: "primitive";
  readonly name: AvroPrimitiveName;
  readonly props: Props;
}

export interface AvroField {
  readonly name: string;
  readonly type: AvroType;
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly aliases: readonly string[];
  readonly order: "ascending" | "descending" | "ignore";
  readonly doc?: string;
  readonly props: Props;
}

export interface AvroRecord {
  readonly kind: "record";
  readonly fullName: string;
  readonly aliases: readonly string[];
  readonly doc?: string;
  readonly fields: readonly AvroField[];
  readonly isError: boolean;
  readonly props: Props;
}

export interface AvroEnum {
  readonly kind: "enum";
  readonly fullName: string;
  readonly aliases: readonly string[];
  readonly doc?: string;
  readonly symbols: readonly string[];
  readonly default?: string;
  readonly props: Props;
}

export interface AvroFixed {
  readonly kind: "fixed";
  readonly fullName: string;
  readonly aliases: readonly string[];
  readonly doc?: string;
  readonly size: number;
  readonly props: Props;
}

export interface AvroArray {
  readonly kind: "array";
  readonly items: AvroType;
  readonly props: Props;
}

export interface AvroMap {
  readonly kind: "map";
  readonly values: AvroType;
  readonly props: Props;
}

export interface AvroUnion {
  readonly kind: "union";
  readonly branches: readonly AvroType[];
}

export type AvroNamedType = AvroRecord | AvroEnum | AvroFixed;
export type AvroType = AvroPrimitive | AvroNamedType | AvroArray | AvroMap | AvroUnion;

/**
 * What the registry parses (a request's body, a schema's text) may hold: a schema of the largest size
 * the registry keeps (512 KiB) written as records of fields holds some 60,000 values. More would cost
 * the daemon's main thread many times the text's bytes to parse (runtime/json-shape.ts). The depth of
 * a schema is left to its reader (at most 100 levels of Avro types, each one to three of JSON).
 */
export const REGISTRY_JSON_SHAPE: JsonShapeLimits = { maxDepth: Number.MAX_SAFE_INTEGER, maxValues: 150_000 };

/** Parses schema text (JSON) and validates it. Throws InvalidSchemaError. */
export function parseSchemaText(text: string): AvroType {
  const shape = jsonShapeProblem(text, REGISTRY_JSON_SHAPE);
  if (shape !== null) throw new InvalidSchemaError(`the schema is refused unread: ${shape}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InvalidSchemaError(`schema is not valid JSON: ${(error as Error).message}`);
  }
  return parseSchema(json);
}

/** Validates a schema in JSON form. Throws InvalidSchemaError. */
export function parseSchema(json: unknown): AvroType {
  const parser = new SchemaParser();
  const type = parser.parse(json, "", "schema");
  parser.validateDefaults();
  return type;
}

/** The short name of a named type, or the type's kind name ("int", "array", ...). */
export function typeLabel(type: AvroType): string {
  switch (type.kind) {
    case "primitive":
      return type.name;
    case "record":
    case "enum":
    case "fixed":
      return type.fullName;
    case "union":
      return `union [${type.branches.map(typeLabel).join(", ")}]`;
    default:
      return type.kind;
  }
}

const RECORD_ATTRIBUTES = new Set(["type", "name", "namespace", "doc", "aliases", "fields"]);
const FIELD_ATTRIBUTES = new Set(["name", "type", "default", "doc", "aliases", "order"]);
const ENUM_ATTRIBUTES = new Set(["type", "name", "namespace", "doc", "aliases", "symbols", "default"]);
const FIXED_ATTRIBUTES = new Set(["type", "name", "namespace", "doc", "aliases", "size"]);

interface PendingDefault {
  readonly field: AvroField;
  readonly where: string;
}

/** Deepest nesting of types (records in records, arrays of arrays...) a schema may have: deeper ones are refused, not a stack overflow. */
export const MAX_SCHEMA_DEPTH = 100;

class SchemaParser {
  private readonly named = new Map<string, AvroNamedType>();
  private readonly pendingDefaults: PendingDefault[] = [];
  private depth = 0;

  parse(json: unknown, namespace: string, where: string): AvroType {
    if (this.depth >= MAX_SCHEMA_DEPTH) throw new InvalidSchemaError(`${where}: types nest deeper than ${MAX_SCHEMA_DEPTH} levels`);
    this.depth++;
    try {
      return this.parseType(json, namespace, where);
    } finally {
      this.depth--;
    }
  }

  private parseType(json: unknown, namespace: string, where: string): AvroType {
    if (typeof json === "string") return this.reference(json, namespace, where);
    if (Array.isArray(json)) return this.union(json, namespace, where);
    if (typeof json !== "object" || json === null) {
      throw new InvalidSchemaError(`${where}: ${JSON.stringify(json)} is not a schema (expected a type name, an array or an object)`);
    }
    const object = json as Record<string, unknown>;
    const type = object.type;
    if (type === undefined) throw new InvalidSchemaError(`${where}: schema object has no "type"`);
    if (typeof type !== "string") return this.parse(type, namespace, where);
    switch (type) {
      case "record":
      case "error":
        return this.record(object, namespace, where);
      case "enum":
        return this.enumType(object, namespace, where);
      case "fixed":
        return this.fixed(object, namespace, where);
      case "array":
        if (!("items" in object)) throw new InvalidSchemaError(`${where}: array has no "items"`);
        return { kind: "array", items: this.parse(object.items, namespace, `${where} items`), props: pickProps(object, ["type", "items"]) };
      case "map":
        if (!("values" in object)) throw new InvalidSchemaError(`${where}: map has no "values"`);
        return { kind: "map", values: this.parse(object.values, namespace, `${where} values`), props: pickProps(object, ["type", "values"]) };
      default:
        if (AVRO_PRIMITIVES.has(type)) {
          if (type === "bytes") checkDecimal(object, where, null);
          return { kind: "primitive", name: type as AvroPrimitiveName, props: pickProps(object, ["type"]) };
        }
        return this.reference(type, namespace, where);
    }
  }

  validateDefaults(): void {
    for (const { field, where } of this.pendingDefaults) {
      if (!isValidDefault(field.type, field.default)) {
        throw new InvalidSchemaError(`${where}: default value ${JSON.stringify(field.default)} is not a valid ${describeForDefault(field.type)}`);
      }
    }
  }

  private reference(name: string, namespace: string, where: string): AvroType {
    if (AVRO_PRIMITIVES.has(name)) return { kind: "primitive", name: name as AvroPrimitiveName, props: {} };
    const candidates = name.includes(".") || namespace === "" ? [name] : [`${namespace}.${name}`, name];
    for (const candidate of candidates) {
      const found = this.named.get(candidate);
      if (found) return found;
    }
    throw new InvalidSchemaError(`${where}: unknown type "${name}"`);
  }

  private union(branchesJson: readonly unknown[], namespace: string, where: string): AvroUnion {
    const branches: AvroType[] = [];
    const seen = new Set<string>();
    branchesJson.forEach((branchJson, index) => {
      if (Array.isArray(branchJson)) throw new InvalidSchemaError(`${where}: a union may not directly contain another union`);
      const branch = this.parse(branchJson, namespace, `${where} branch ${index}`);
      if (branch.kind === "union") throw new InvalidSchemaError(`${where}: a union may not directly contain another union`);
      const key = branch.kind === "primitive" ? branch.name : "fullName" in branch ? branch.fullName : branch.kind;
      if (seen.has(key)) throw new InvalidSchemaError(`${where}: union contains "${key}" twice`);
      seen.add(key);
      branches.push(branch);
    });
    return { kind: "union", branches };
  }

  private record(object: Record<string, unknown>, enclosing: string, where: string): AvroRecord {
    const { fullName, namespace } = this.declareName(object, enclosing, where);
    const fieldsJson = object.fields;
    if (!Array.isArray(fieldsJson)) throw new InvalidSchemaError(`record "${fullName}": "fields" must be an array`);
    const fields: AvroField[] = [];
    const record: AvroRecord = {
      kind: "record",
      fullName,
      aliases: qualifyAliases(object.aliases, namespace, `record "${fullName}"`),
      ...optionalDoc(object.doc, `record "${fullName}"`),
      fields,
      isError: object.type === "error",
      props: pickProps(object, RECORD_ATTRIBUTES),
    };
    this.named.set(fullName, record);
    const fieldNames = new Set<string>();
    for (const fieldJson of fieldsJson) {
      const field = this.field(fieldJson, namespace, fullName);
      if (fieldNames.has(field.name)) throw new InvalidSchemaError(`record "${fullName}": field "${field.name}" is declared twice`);
      fieldNames.add(field.name);
      fields.push(field);
    }
    return record;
  }

  private field(json: unknown, namespace: string, recordName: string): AvroField {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new InvalidSchemaError(`record "${recordName}": field ${JSON.stringify(json)} is not an object`);
    }
    const object = json as Record<string, unknown>;
    const name = object.name;
    if (typeof name !== "string" || !isValidAvroName(name)) {
      throw new InvalidSchemaError(`record "${recordName}": field name ${JSON.stringify(name)} is not a valid Avro name`);
    }
    const where = `record "${recordName}" field "${name}"`;
    if (!("type" in object)) throw new InvalidSchemaError(`${where}: field has no "type"`);
    const order = object.order ?? "ascending";
    if (order !== "ascending" && order !== "descending" && order !== "ignore") {
      throw new InvalidSchemaError(`${where}: order ${JSON.stringify(order)} is not ascending, descending or ignore`);
    }
    const aliases = object.aliases ?? [];
    if (!Array.isArray(aliases) || !aliases.every((alias) => typeof alias === "string" && isValidAvroName(alias))) {
      throw new InvalidSchemaError(`${where}: aliases must be an array of valid names`);
    }
    const field: AvroField = {
      name,
      type: this.parse(object.type, namespace, where),
      hasDefault: "default" in object,
      default: object.default,
      aliases: aliases as string[],
      order,
      ...optionalDoc(object.doc, where),
      props: pickProps(object, FIELD_ATTRIBUTES),
    };
    if (field.hasDefault) this.pendingDefaults.push({ field, where });
    return field;
  }

  private enumType(object: Record<string, unknown>, enclosing: string, where: string): AvroEnum {
    const { fullName, namespace } = this.declareName(object, enclosing, where);
    const symbols = object.symbols;
    if (!Array.isArray(symbols)) throw new InvalidSchemaError(`enum "${fullName}": "symbols" must be an array`);
    const seen = new Set<string>();
    for (const symbol of symbols) {
      if (typeof symbol !== "string" || !isValidAvroName(symbol)) {
        throw new InvalidSchemaError(`enum "${fullName}": symbol ${JSON.stringify(symbol)} is not a valid Avro name`);
      }
      if (seen.has(symbol)) throw new InvalidSchemaError(`enum "${fullName}": symbol "${symbol}" appears twice`);
      seen.add(symbol);
    }
    const enumDefault = object.default;
    if (enumDefault !== undefined && (typeof enumDefault !== "string" || !seen.has(enumDefault))) {
      throw new InvalidSchemaError(`enum "${fullName}": default ${JSON.stringify(enumDefault)} is not one of its symbols`);
    }
    const type: AvroEnum = {
      kind: "enum",
      fullName,
      aliases: qualifyAliases(object.aliases, namespace, `enum "${fullName}"`),
      ...optionalDoc(object.doc, `enum "${fullName}"`),
      symbols: symbols as string[],
      ...(enumDefault === undefined ? {} : { default: enumDefault }),
      props: pickProps(object, ENUM_ATTRIBUTES),
    };
    this.named.set(fullName, type);
    return type;
  }

  private fixed(object: Record<string, unknown>, enclosing: string, where: string): AvroFixed {
    const { fullName, namespace } = this.declareName(object, enclosing, where);
    const size = object.size;
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0) {
      throw new InvalidSchemaError(`fixed "${fullName}": size ${JSON.stringify(size)} is not a non-negative integer`);
    }
    checkDecimal(object, `fixed "${fullName}"`, size);
    const type: AvroFixed = {
      kind: "fixed",
      fullName,
      aliases: qualifyAliases(object.aliases, namespace, `fixed "${fullName}"`),
      ...optionalDoc(object.doc, `fixed "${fullName}"`),
      size,
      props: pickProps(object, FIXED_ATTRIBUTES),
    };
    this.named.set(fullName, type);
    return type;
  }

  private declareName(object: Record<string, unknown>, enclosing: string, where: string): { fullName: string; namespace: string } {
    const name = object.name;
    if (typeof name !== "string") throw new InvalidSchemaError(`${where}: ${String(object.type)} has no "name"`);
    const declaredNamespace = object.namespace;
    if (declaredNamespace !== undefined && declaredNamespace !== null && typeof declaredNamespace !== "string") {
      throw new InvalidSchemaError(`${where}: namespace ${JSON.stringify(declaredNamespace)} is not a string`);
    }
    let fullName: string;
    if (name.includes(".")) fullName = name;
    else {
      const namespace = typeof declaredNamespace === "string" ? declaredNamespace : enclosing;
      if (!isValidNamespace(namespace)) throw new InvalidSchemaError(`${where}: namespace "${namespace}" is not a valid Avro namespace`);
      fullName = namespace === "" ? name : `${namespace}.${name}`;
    }
    if (!isValidFullName(fullName)) throw new InvalidSchemaError(`${where}: "${fullName}" is not a valid Avro name`);
    if (AVRO_PRIMITIVES.has(fullName)) throw new InvalidSchemaError(`${where}: the primitive type "${fullName}" cannot be redefined`);
    if (this.named.has(fullName)) throw new InvalidSchemaError(`${where}: type "${fullName}" is defined twice`);
    return { fullName, namespace: namespaceOf(fullName) };
  }
}

/**
 * The `decimal` logical type on bytes or fixed: precision a whole number above 0 (for fixed, no more
 * digits than its size holds), scale a whole number from 0 to the precision.
 */
function checkDecimal(object: Record<string, unknown>, where: string, fixedSize: number | null): void {
  if (object.logicalType !== "decimal") return;
  const { precision, scale = 0 } = object;
  if (typeof precision !== "number" || !Number.isInteger(precision) || precision < 1) {
    throw new InvalidSchemaError(`${where}: decimal precision ${JSON.stringify(precision)} is not a whole number above 0`);
  }
  if (typeof scale !== "number" || !Number.isInteger(scale) || scale < 0 || scale > precision) {
    throw new InvalidSchemaError(`${where}: decimal scale ${JSON.stringify(scale)} is not a whole number from 0 to the precision (${precision})`);
  }
  if (fixedSize !== null) {
    const digits = fixedSize === 0 ? 0 : Math.floor(Math.log10(2) * (8 * fixedSize - 1));
    if (precision > digits) throw new InvalidSchemaError(`${where}: decimal precision ${precision} needs more than its ${fixedSize} bytes (at most ${digits} digits)`);
  }
}

function qualifyAliases(aliases: unknown, namespace: string, where: string): string[] {
  if (aliases === undefined) return [];
  if (!Array.isArray(aliases)) throw new InvalidSchemaError(`${where}: aliases must be an array`);
  return aliases.map((alias) => {
    if (typeof alias !== "string") throw new InvalidSchemaError(`${where}: alias ${JSON.stringify(alias)} is not a string`);
    const full = alias.includes(".") || namespace === "" ? alias : `${namespace}.${alias}`;
    if (!isValidFullName(full)) throw new InvalidSchemaError(`${where}: alias "${alias}" is not a valid Avro name`);
    return full;
  });
}

function optionalDoc(doc: unknown, where: string): { doc?: string } {
  if (doc === undefined) return {};
  if (typeof doc !== "string") throw new InvalidSchemaError(`${where}: doc must be a string`);
  return { doc };
}

function pickProps(object: Record<string, unknown>, reserved: Iterable<string>): Props {
  const skip = new Set(reserved);
  const props: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) if (!skip.has(key)) props[key] = value;
  return props;
}

function describeForDefault(type: AvroType): string {
  return type.kind === "union" ? `${typeLabel(type)} (no branch matches)` : typeLabel(type);
}
