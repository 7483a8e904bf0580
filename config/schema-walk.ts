/**
 * Reads the shape of the zod config schema: which keys are valid at a path (for "did you mean"),
 * and the tree of keys with types, defaults and descriptions (for the generated reference).
 */
import { z } from "zod";

type AnySchema = z.core.$ZodType;

interface Def {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  out?: AnySchema;
  shape?: Record<string, AnySchema>;
  element?: AnySchema;
  valueType?: AnySchema;
  options?: AnySchema[];
  discriminator?: string;
  values?: unknown[];
  entries?: Record<string, string>;
  defaultValue?: unknown;
}

function defOf(schema: AnySchema): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Strips optional/default/nullable/pipe wrappers. */
export function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if ((def.type === "optional" || def.type === "default" || def.type === "nullable" || def.type === "prefault") && def.innerType) current = def.innerType;
    else if (def.type === "pipe" && def.in) current = def.in;
    else return current;
  }
}

function discriminatorValues(option: AnySchema, key: string): unknown[] {
  const field = defOf(unwrap(option)).shape?.[key];
  return field ? (defOf(unwrap(field)).values ?? []) : [];
}

/** The options of a discriminated union and their discriminator values. */
export function unionChoices(schema: AnySchema): { key: string; values: string[] } | undefined {
  const def = defOf(unwrap(schema));
  if (def.type !== "union" || !def.discriminator) return undefined;
  const key = def.discriminator;
  return { key, values: (def.options ?? []).flatMap((o) => discriminatorValues(o, key).map(String)) };
}

/** The schema that validates the value found at `path` in `root` (the parsed document). */
export function schemaAt(schema: AnySchema, path: readonly PropertyKey[], root: unknown): AnySchema | undefined {
  let current: AnySchema | undefined = schema;
  let value: unknown = root;
  for (const part of [...path, undefined]) {
    if (!current) return undefined;
    current = unwrap(current);
    const def = defOf(current);
    if (def.type === "union" && def.options) {
      const discriminator = def.discriminator;
      const chosen: AnySchema | undefined = discriminator
        ? def.options.find((o) => discriminatorValues(o, discriminator).includes((value as Record<string, unknown> | undefined)?.[discriminator]))
        : def.options.find((o) => defOf(unwrap(o)).type === "object");
      if (!chosen) return part === undefined ? current : undefined;
      current = unwrap(chosen);
    }
    if (part === undefined) return current;
    const inner = defOf(current);
    if (inner.type === "object") current = inner.shape?.[String(part)];
    else if (inner.type === "array") current = inner.element;
    else if (inner.type === "record") current = inner.valueType;
    else return undefined;
    value = (value as Record<PropertyKey, unknown> | undefined)?.[part as string];
  }
  return current;
}

/** Keys an object schema accepts, or undefined when the schema is not an object. */
export function objectKeys(schema: AnySchema): string[] | undefined {
  const def = defOf(unwrap(schema));
  return def.type === "object" && def.shape ? Object.keys(def.shape) : undefined;
}

export interface KeyDoc {
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  description: string;
}

function describeType(schema: AnySchema): string {
  const s = unwrap(schema);
  const def = defOf(s);
  switch (def.type) {
    case "enum":
      return Object.values(def.entries ?? {}).map((v) => `\`${v}\``).join(" \\| ");
    case "literal":
      return (def.values ?? []).map((v) => `\`${String(v)}\``).join(" \\| ");
    case "array":
      return `list of ${describeType(def.element!)}`;
    case "record":
      return `map of ${describeType(def.valueType!)}`;
    case "union":
      return (def.options ?? []).map(describeType).join(" or ");
    default:
      return def.type;
  }
}

function descriptionOf(schema: AnySchema): string {
  let current: AnySchema | undefined = schema;
  while (current) {
    const meta = z.globalRegistry.get(current);
    if (meta?.description) return meta.description;
    const def = defOf(current);
    current = def.innerType ?? def.in;
  }
  return "";
}

function defaultOf(schema: AnySchema): { has: boolean; value?: unknown } {
  let current: AnySchema | undefined = schema;
  while (current) {
    const def = defOf(current);
    if (def.type === "default") return { has: true, value: def.defaultValue };
    if (def.type === "optional") return { has: false };
    current = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
  }
  return { has: false };
}

function isOptional(schema: AnySchema): boolean {
  let current: AnySchema | undefined = schema;
  while (current) {
    const def = defOf(current);
    if (def.type === "optional" || def.type === "default") return true;
    current = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
  }
  return false;
}

/** Every documented key, depth first, with discriminated variants labelled by their `kind`. */
export function documentKeys(schema: AnySchema, prefix = ""): KeyDoc[] {
  const out: KeyDoc[] = [];
  const s = unwrap(schema);
  const def = defOf(s);
  if (def.type === "union" && def.discriminator && def.options) {
    for (const option of def.options) {
      const kind = discriminatorValues(option, def.discriminator)[0];
      out.push(...documentKeys(option, `${prefix}(${def.discriminator}: ${String(kind)})`));
    }
    return out;
  }
  if (def.type === "array" && def.element && defOf(unwrap(def.element)).type !== "string") {
    return documentKeys(def.element, `${prefix}[]`);
  }
  if (def.type !== "object" || !def.shape) return out;
  for (const [key, field] of Object.entries(def.shape)) {
    const path = prefix === "" ? key : prefix.endsWith(")") ? `${prefix} ${key}` : `${prefix}.${key}`;
    const fallback = defaultOf(field);
    const inner = defOf(unwrap(field));
    const nested = inner.type === "object" || (inner.type === "union" && inner.discriminator) || (inner.type === "array" && inner.element && ["object", "union"].includes(defOf(unwrap(inner.element)).type));
    out.push({
      path,
      type: nested ? (inner.type === "array" ? "list" : "section") : describeType(field),
      required: !isOptional(field),
      ...(fallback.has && !nested ? { default: fallback.value } : {}),
      description: descriptionOf(field),
    });
    if (nested) out.push(...documentKeys(field, path));
  }
  return out;
}
