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
        .describe("Regular expression (JavaScript, u flag) the value's text must match somewhere; anchor it with ^\u2026$ for the whole value"),
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
    personal: z
      .strictObject({
        subject: z.string().min(1).describe("Column naming the data subject (e.g. customer_id): its value chooses the key; it stays in clear, and `sluice forget --subject` matches its text exactly. An integer, decimal, text or uuid column: another type halts the table at capture (docs/governance.md)"),
        columns: z.array(z.string().min(1)).min(1).describe("Personal columns: encrypted in the topics with the subject's key, carried as text (docs/governance.md)"),
      })
      .optional()
      .describe('Erasable personal data (crypto-shredding), e.g. {"subject": "customer_id", "columns": ["email", "phone"]}: the columns are encrypted with a key per subject, sinks decrypt them, and `sluice forget` destroys the key; needs personal_data.master_key_file'),
  })
  .superRefine((value, ctx) => {
    if (!value.personal) return;
    const { subject, columns } = value.personal;
    if (columns.includes(subject)) ctx.addIssue({ code: "custom", path: ["personal", "columns"], message: `the subject column ${subject} cannot be personal itself: it names whose key encrypts the others` });
    for (const column of [subject, ...columns]) {
      if (value.transforms[column] !== undefined) ctx.addIssue({ code: "custom", path: ["transforms", column], message: `column ${column} is ${column === subject ? "the personal data subject" : "personal"}: it cannot have a transform too` });
    }
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

/** The deployment's `personal_data` section: the master key wrapping every subject's data key. */
export const personalData = z
  .strictObject({
    master_key_file: z.string().min(1).describe('File holding the master key: 32 bytes as 64 hex digits or base64 (e.g. from "openssl rand -hex 32"); it wraps every data subject\'s key; a relative path is read from the config file\'s folder'),
    previous_master_key_files: z
      .array(z.string().min(1))
      .default([])
      .describe("Master keys being rotated away from: still accepted for reading subject keys until `sluice rotate-master-key --execute` has rewrapped every key with master_key_file (docs/governance.md)"),
    key_cache_size: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Subjects' keys kept unwrapped in memory by each thread that captures or applies personal data, least recently used dropped first (about 2 KB each with its prepared cipher key); a key not cached is read from the key topic at its offset. Default: the key stores of a process share a 32nd of the memory budget (1,000 to 100,000 keys each). Set it to at least the subjects changing within a few seconds (docs/governance.md)"),
  })
  .optional()
  .describe("Keys of erasable personal data (governance.tables.<table>.personal): per subject an AES-256-GCM key, kept in <deployment>.sluice.subject-keys, wrapped by the master key");

export type PersonalDataConfig = z.infer<typeof personalData>;
