/** Avro names: validity, deterministic sanitising of database identifiers, unique field names. */

const AVRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isValidAvroName(name: string): boolean {
  return AVRO_NAME.test(name);
}

/** A full name: dot-separated valid names (an empty namespace is allowed only as the whole string). */
export function isValidFullName(fullName: string): boolean {
  return fullName.split(".").every(isValidAvroName);
}

export function isValidNamespace(namespace: string): boolean {
  return namespace === "" || isValidFullName(namespace);
}

/**
 * Turns any identifier into a valid Avro name: every character outside [A-Za-z0-9_] becomes
 * "_", a leading digit gets a "_" prefix, the empty string becomes "_".
 */
export function sanitizeAvroName(identifier: string): string {
  let name = "";
  for (const char of identifier) {
    name += /[A-Za-z0-9_]/.test(char) ? char : "_";
  }
  if (name === "") return "_";
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** Sanitises each dot-separated part of a namespace. */
export function sanitizeNamespace(parts: readonly string[]): string {
  return parts.map(sanitizeAvroName).join(".");
}

/**
 * Assigns a unique, valid Avro name to each identifier, in order. An identifier with a name in
 * `kept` (the names of a table's previous schema) keeps it when it is valid and free; any other
 * gets its sanitised name, or when that is taken (by a kept name, an earlier identifier or a
 * reserved name) the first free suffix `_2`, `_3`, ... So a column keeps its field name whatever
 * columns are added before it or dropped, and without `kept` names follow column order.
 */
export function assignUniqueNames(identifiers: readonly string[], reserved: ReadonlySet<string> = new Set(), kept: ReadonlyMap<string, string> = new Map()): string[] {
  const taken = new Set(reserved);
  const names = identifiers.map((identifier) => {
    const name = kept.get(identifier);
    if (name === undefined || !isValidAvroName(name) || taken.has(name)) return undefined;
    taken.add(name);
    return name;
  });
  return identifiers.map((identifier, index) => {
    const keptName = names[index];
    if (keptName !== undefined) return keptName;
    const base = sanitizeAvroName(identifier);
    let name = base;
    for (let suffix = 2; taken.has(name); suffix++) name = `${base}_${suffix}`;
    taken.add(name);
    return name;
  });
}

export function shortName(fullName: string): string {
  const dot = fullName.lastIndexOf(".");
  return dot < 0 ? fullName : fullName.slice(dot + 1);
}

export function namespaceOf(fullName: string): string {
  const dot = fullName.lastIndexOf(".");
  return dot < 0 ? "" : fullName.slice(0, dot);
}
