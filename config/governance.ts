/**
 * A source's `governance` section (docs/governance.md): column transforms applied at capture,
 * before anything is published. Kept apart from schema.ts, which only mounts it.
 */
import { z } from "zod";

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

const tableGovernance = z
  .strictObject({
    transforms: z.record(z.string().min(1), transform).default({}).describe('Transform per column, e.g. {"email": {"kind": "hash"}, "phone": {"kind": "mask", "keep_last": 4}}'),
  })
  .describe("Governance of one table");

export const governance = z
  .strictObject({
    hash_key: z.string().min(16).optional().describe("Secret of the hash transform (or hash_key_file), at least 16 characters; changing it changes every hashed value"),
    tables: z
      .record(z.string().regex(/^[A-Za-z0-9_$-]+\.[A-Za-z0-9_$-]+$/, { error: 'expected "schema.table" (MySQL: "database.table")' }), tableGovernance)
      .default({})
      .describe(
        'Per table ("schema.table", MySQL "database.table"): {transforms: {<column>: {kind: ...}}} with kind drop (left out), null (always null), mask (all but the last keep_last characters, default 4, become *), hash (HMAC-SHA-256 keyed by hash_key, 64 hex digits) or truncate (first `length` characters); mask, hash and truncate make the column text. Key columns cannot be transformed',
      ),
  })
  .superRefine((value, ctx) => {
    const hashed = Object.entries(value.tables).flatMap(([table, t]) => Object.entries(t.transforms).filter(([, x]) => x.kind === "hash").map(([column]) => `${table}.${column}`));
    if (hashed.length > 0 && value.hash_key === undefined) ctx.addIssue({ code: "custom", path: ["hash_key"], message: `the hash transform of ${hashed.join(", ")} needs hash_key (or hash_key_file)` });
  })
  .optional()
  .describe("Data governance (docs/governance.md): column transforms applied at capture, before anything is published");

export type GovernanceConfig = z.infer<typeof governance>;
