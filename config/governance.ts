/**
 * A source's `governance` section (docs/governance.md): column transforms applied at capture,
 * before anything is published. Kept apart from schema.ts, which only mounts it.
 */
import { z } from "zod";
import { DURATION_PATTERN, parseDuration } from "./units.ts";

const keepLast = z.number().int().min(0).max(1_000).default(4).describe("Characters left readable at the end");

const transform = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("drop").describe("The column is left out of the topic, the registered schema and every sink") }),
    z.strictObject({ kind: z.literal("null").describe("The column is kept, always null (its schema becomes nullable)") }),
    z.strictObject({ kind: z.literal("mask").describe("Every character but the last `keep_last` becomes *; the column becomes text"), keep_last: keepLast }),
    z.strictObject({
      kind: z.literal("hash").describe("HMAC-SHA-256 of the value's text keyed by `hash_key`, as 64 hex digits: stable, so hashed columns still join; the column becomes text"),
    }),
    z.strictObject({
      kind: z.literal("truncate").describe("The first `length` characters of the value's text; the column becomes text"),
      length: z.number().int().min(0).max(1 << 30).describe("Characters kept"),
    }),
  ])
  .describe("What the column's values become: drop, null, mask, hash or truncate");

export type ColumnTransform = z.infer<typeof transform>;

const action = z
  .enum(["warn", "dead-letter", "halt"])
  .default("warn")
  .describe("warn: counted and logged (table, key, column; never the value), the change is published; dead-letter: the change goes to <deployment>.dlq.<source> instead of its topic; halt: the table halts at capture (sluice halted retry|skip)");
const column = z.string().min(1).describe("Column checked (its value as captured, before transforms)");
const bound = z.union([z.number(), z.string().min(1)]).optional();

const check = z
  .discriminatedUnion("check", [
    z.strictObject({ check: z.literal("not_null"), column, action }),
    z.strictObject({
      check: z.literal("range"),
      column,
      min: bound.describe("Smallest value allowed: a number, or for a date/time column an ISO-8601 date or timestamp"),
      max: bound.describe("Largest value allowed: a number, or for a date/time column an ISO-8601 date or timestamp"),
      action,
    }),
    z.strictObject({
      check: z.literal("regex"),
      column,
      pattern: z
        .string()
        .min(1)
        .refine((p) => {
          try {
            new RegExp(p, "u");
            return true;
          } catch {
            return false;
          }
        }, "expected a valid regular expression")
        .describe("Regular expression (JavaScript, u flag) the value's text must match somewhere; anchor it with ^…$ for the whole value"),
      action,
    }),
    z.strictObject({ check: z.literal("one_of"), column, values: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1).describe("Values allowed"), action }),
    z.strictObject({ check: z.literal("max_length"), column, length: z.number().int().min(0).describe("Most characters (bytes: most bytes) allowed"), action }),
    z.strictObject({ check: z.literal("unique_in_batch"), column, action }),
  ])
  .describe("A check of each inserted, updated or snapshot row; null values pass every check but not_null");

export type DataCheck = z.infer<typeof check>;

const tableGovernance = z
  .strictObject({
    checks: z
      .array(check)
      .default([])
      .describe(
        'Runtime data checks, e.g. [{"check": "not_null", "column": "email", "action": "halt"}]: check not_null, range (min/max), regex (pattern), one_of (values), max_length (length) or unique_in_batch (no two rows of one source batch with the same value), each with an action warn (default), dead-letter or halt',
      ),
    transforms: z.record(z.string().min(1), transform).default({}).describe('Transform per column, e.g. {"email": {"kind": "hash"}, "phone": {"kind": "mask", "keep_last": 4}}'),
  })
  .describe("Governance of one table");

export const governance = z
  .strictObject({
    hash_key: z.string().min(16).optional().describe("Secret of the hash transform (or hash_key_file), at least 16 characters; changing it changes every hashed value"),
    freshness: z
      .strictObject({
        max_quiet: z
          .union([z.number().int().positive(), z.string().regex(DURATION_PATTERN, { error: 'expected a duration such as "30m" or "2h"' })])
          .transform((v) => (typeof v === "number" ? v : parseDuration(v)!))
          .describe('Longest time without any captured change before a freshness failure is counted and logged (duration: "30m", "2h", or milliseconds)'),
      })
      .optional()
      .describe("Freshness rule of the source: no change for max_quiet is a data check failure (check freshness, action warn)"),
    tables: z
      .record(z.string().regex(/^[A-Za-z0-9_$-]+\.[A-Za-z0-9_$-]+$/, { error: 'expected "schema.table" (MySQL: "database.table")' }), tableGovernance)
      .default({})
      .describe(
        'Per table ("schema.table", MySQL "database.table"): {checks: [...], transforms: {<column>: {kind: ...}}}; checks: not_null, range, regex, one_of, max_length, unique_in_batch with action warn, dead-letter or halt (docs/governance.md); transform kind drop (left out), null (always null), mask (all but the last keep_last characters, default 4, become *), hash (HMAC-SHA-256 keyed by hash_key, 64 hex digits) or truncate (first `length` characters); mask, hash and truncate make the column text. Key columns cannot be transformed',
      ),
  })
  .superRefine((value, ctx) => {
    const hashed = Object.entries(value.tables).flatMap(([table, t]) => Object.entries(t.transforms).filter(([, x]) => x.kind === "hash").map(([column]) => `${table}.${column}`));
    if (hashed.length > 0 && value.hash_key === undefined) ctx.addIssue({ code: "custom", path: ["hash_key"], message: `the hash transform of ${hashed.join(", ")} needs hash_key (or hash_key_file)` });
  })
  .optional()
  .describe("Data governance (docs/governance.md): column transforms applied at capture, before anything is published, and runtime data checks");

export type GovernanceConfig = z.infer<typeof governance>;
