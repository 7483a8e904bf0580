/**
 * Partial JSON updates (binlog_row_value_options=PARTIAL_JSON): instead of the new document the
 * after image holds a list of diffs -- operation (0 replace, 1 insert, 2 remove), a path such as
 * `$.a[2]."b c"`, and for replace/insert a binary JSON value -- which are applied, in order, to
 * the before image's document.
 */
import { BinaryReader } from "../protocol/binary-reader.ts";
import { decodeJsonBinary } from "./json-binary.ts";
import type { JsonNode } from "./json-binary.ts";

const Operation = { REPLACE: 0, INSERT: 1, REMOVE: 2 } as const;

export interface JsonDiff {
  readonly operation: number;
  readonly path: string;
  readonly value: JsonNode | null;
}

export function readJsonDiffs(bytes: Buffer, start: number, end: number): JsonDiff[] {
  const reader = new BinaryReader(bytes, start, end);
  const diffs: JsonDiff[] = [];
  while (reader.remaining > 0) {
    const operation = reader.u8();
    if (operation > Operation.REMOVE) throw new RangeError(`unknown JSON diff operation ${operation}`);
    const path = reader.utf8(reader.lenenc());
    let value: JsonNode | null = null;
    if (operation !== Operation.REMOVE) {
      const length = reader.lenenc();
      value = decodeJsonBinary(bytes, reader.pos, reader.pos + length);
      reader.skip(length);
    }
    diffs.push({ operation, path, value });
  }
  return diffs;
}

type Leg = { readonly key: string } | { readonly index: number };

/** The legs of a JSON path as MySQL logs it: `$`, then `.key`, `."quoted key"` or `[n]`. */
export function parseJsonPath(path: string): Leg[] {
  if (!path.startsWith("$")) throw new SyntaxError(`JSON path "${path}" does not start with $`);
  const legs: Leg[] = [];
  let i = 1;
  while (i < path.length) {
    const char = path[i];
    if (char === " ") {
      i++;
    } else if (char === "[") {
      const close = path.indexOf("]", i);
      const index = Number(path.slice(i + 1, close).trim());
      if (close < 0 || !Number.isInteger(index)) throw new SyntaxError(`bad array leg in JSON path "${path}"`);
      legs.push({ index });
      i = close + 1;
    } else if (char === "." && path[i + 1] === '"') {
      let j = i + 2;
      while (j < path.length && path[j] !== '"') j += path[j] === "\\" ? 2 : 1;
      legs.push({ key: JSON.parse(path.slice(i + 1, j + 1)) as string });
      i = j + 1;
    } else if (char === ".") {
      let j = i + 1;
      while (j < path.length && path[j] !== "." && path[j] !== "[") j++;
      legs.push({ key: path.slice(i + 1, j) });
      i = j;
    } else {
      throw new SyntaxError(`unexpected "${char}" in JSON path "${path}"`);
    }
  }
  return legs;
}

/** MySQL orders object keys by length, then bytewise. */
function keyOrder(a: string, b: string): number {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length !== y.length ? x.length - y.length : Buffer.compare(x, y);
}

export function applyJsonDiffs(document: JsonNode, diffs: readonly JsonDiff[]): JsonNode {
  let root = document;
  for (const diff of diffs) {
    const legs = parseJsonPath(diff.path);
    if (legs.length === 0) {
      if (diff.operation === Operation.REMOVE) throw new RangeError("a JSON diff cannot remove the whole document");
      root = diff.value!;
      continue;
    }
    const parent = legs.slice(0, -1).reduce<JsonNode | undefined>((node, leg) => (node === undefined ? undefined : child(node, leg)), root);
    if (parent === undefined) throw new RangeError(`JSON diff path ${diff.path} does not exist in the before image`);
    edit(parent, legs.at(-1)!, diff);
  }
  return root;
}

function child(node: JsonNode, leg: Leg): JsonNode | undefined {
  if ("key" in leg) return node.kind === "object" ? node.entries.find(([key]) => key === leg.key)?.[1] : undefined;
  return node.kind === "array" ? node.items[leg.index] : undefined;
}

function edit(parent: JsonNode, leg: Leg, diff: JsonDiff): void {
  if ("key" in leg) {
    if (parent.kind !== "object") throw new RangeError(`JSON diff path ${diff.path}: parent is not an object`);
    const at = parent.entries.findIndex(([key]) => key === leg.key);
    if (diff.operation === Operation.REMOVE) {
      if (at >= 0) parent.entries.splice(at, 1);
    } else if (at >= 0) {
      parent.entries[at] = [leg.key, diff.value!];
    } else {
      const before = parent.entries.findIndex(([key]) => keyOrder(leg.key, key) < 0);
      parent.entries.splice(before < 0 ? parent.entries.length : before, 0, [leg.key, diff.value!]);
    }
    return;
  }
  if (parent.kind !== "array") throw new RangeError(`JSON diff path ${diff.path}: parent is not an array`);
  if (diff.operation === Operation.REMOVE) parent.items.splice(leg.index, 1);
  else if (diff.operation === Operation.REPLACE) parent.items[leg.index] = diff.value!;
  else parent.items.splice(Math.min(leg.index, parent.items.length), 0, diff.value!);
}
