/**
 * Two textual forms of a parsed schema:
 * - the Parsing Canonical Form of the Avro specification (only what affects the binary encoding);
 * - the normalized form: every attribute kept (docs, defaults, aliases, logical types, custom
 *   properties), names fully qualified, keys in a fixed order, no whitespace. Two schemas with the
 *   same normalized form mean the same thing; the registry stores and deduplicates by it (as
 *   Confluent's registry does with its canonical string).
 */
import type { AvroField, AvroType, Props } from "./avro-parse.ts";

export function parsingCanonicalForm(type: AvroType): string {
  return canonical(type, new Set());
}

export function normalizedForm(type: AvroType): string {
  return normalized(type, new Set());
}

function canonical(type: AvroType, defined: Set<string>): string {
  switch (type.kind) {
    case "primitive":
      return JSON.stringify(type.name);
    case "union":
      return `[${type.branches.map((branch) => canonical(branch, defined)).join(",")}]`;
    case "array":
      return `{"type":"array","items":${canonical(type.items, defined)}}`;
    case "map":
      return `{"type":"map","values":${canonical(type.values, defined)}}`;
    default: {
      const name = JSON.stringify(type.fullName);
      if (defined.has(type.fullName)) return name;
      defined.add(type.fullName);
      if (type.kind === "record") {
        const fields = type.fields.map((field) => `{"name":${JSON.stringify(field.name)},"type":${canonical(field.type, defined)}}`);
        return `{"name":${name},"type":"record","fields":[${fields.join(",")}]}`;
      }
      if (type.kind === "enum") return `{"name":${name},"type":"enum","symbols":${JSON.stringify(type.symbols)}}`;
      return `{"name":${name},"type":"fixed","size":${type.size}}`;
    }
  }
}

function normalized(type: AvroType, defined: Set<string>): string {
  switch (type.kind) {
    case "primitive": {
      const props = propsText(type.props);
      return props === "" ? JSON.stringify(type.name) : `{"type":${JSON.stringify(type.name)}${props}}`;
    }
    case "union":
      return `[${type.branches.map((branch) => normalized(branch, defined)).join(",")}]`;
    case "array":
      return `{"type":"array","items":${normalized(type.items, defined)}${propsText(type.props)}}`;
    case "map":
      return `{"type":"map","values":${normalized(type.values, defined)}${propsText(type.props)}}`;
    default: {
      if (defined.has(type.fullName)) return JSON.stringify(type.fullName);
      defined.add(type.fullName);
      const head = `"type":${type.kind === "record" && type.isError ? '"error"' : JSON.stringify(type.kind)},"name":${JSON.stringify(type.fullName)}`;
      const common = `${type.doc === undefined ? "" : `,"doc":${JSON.stringify(type.doc)}`}${type.aliases.length === 0 ? "" : `,"aliases":${JSON.stringify(type.aliases)}`}`;
      if (type.kind === "record") {
        const fields = type.fields.map((field) => normalizedField(field, defined));
        return `{${head}${common},"fields":[${fields.join(",")}]${propsText(type.props)}}`;
      }
      if (type.kind === "enum") {
        const enumDefault = type.default === undefined ? "" : `,"default":${JSON.stringify(type.default)}`;
        return `{${head}${common},"symbols":${JSON.stringify(type.symbols)}${enumDefault}${propsText(type.props)}}`;
      }
      return `{${head}${common},"size":${type.size}${propsText(type.props)}}`;
    }
  }
}

function normalizedField(field: AvroField, defined: Set<string>): string {
  let text = `{"name":${JSON.stringify(field.name)},"type":${normalized(field.type, defined)}`;
  if (field.doc !== undefined) text += `,"doc":${JSON.stringify(field.doc)}`;
  if (field.hasDefault) text += `,"default":${stableJson(field.default)}`;
  if (field.order !== "ascending") text += `,"order":${JSON.stringify(field.order)}`;
  if (field.aliases.length > 0) text += `,"aliases":${JSON.stringify(field.aliases)}`;
  return `${text}${propsText(field.props)}}`;
}

function propsText(props: Props): string {
  return Object.keys(props)
    .sort()
    .map((key) => `,${JSON.stringify(key)}:${stableJson(props[key])}`)
    .join("");
}

/** JSON with object keys sorted, so equal values have equal text. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson(record[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
