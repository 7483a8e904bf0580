/**
 * The chaos workload: one writer on two tables, every statement stamping the row it writes with a
 * new `rev` (a counter that only grows), so a sink's copy of a row tells how old it is: older
 * `rev` than PostgreSQL's = stale, same `rev` but other values = wrong, a `rev` lower than one
 * seen before in the same sink = a step backwards.
 *
 * Statements: inserts, updates of random columns (NULLs included, sometimes leaving the TOASTed
 * column unchanged), deletes, primary-key updates, in transactions of 1–8 statements; now and then
 * a big transaction (bulk insert / update / delete of up to `maxBigRows` rows of the items table);
 * a few transactions of each kind are rolled back. Keys are never reused, so a row that comes back
 * after it was deleted is a step backwards too.
 */
import type pg from "pg";
import type { ColumnDef, PgParam, Rng, TableDef } from "../e2e/helpers.ts";
import { bigText, createTableSql, paramCast, qualifiedName, randomValue, sleep } from "../e2e/helpers.ts";

const VALUE_OPTIONS = { negativeZero: false, enumLabels: [] } as const;

export function chaosTables(schema: string): TableDef[] {
  const items: ColumnDef[] = [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "rev", sql: "bigint", kind: "int8" },
    { name: "i4", sql: "integer", kind: "int4" },
    { name: "i8", sql: "bigint", kind: "int8" },
    { name: "dec", sql: "numeric(20,4)", kind: "decimal" },
    { name: "num", sql: "numeric", kind: "numeric" },
    { name: "f4", sql: "real", kind: "float4" },
    { name: "f8", sql: "double precision", kind: "float8" },
    { name: "b", sql: "boolean", kind: "bool" },
    { name: "t", sql: "text", kind: "text" },
    { name: "big", sql: "text", kind: "bigtext" },
    { name: "by", sql: "bytea", kind: "bytea" },
    { name: "d", sql: "date", kind: "date" },
    { name: "ts", sql: "timestamp", kind: "timestamp" },
    { name: "tstz", sql: "timestamptz", kind: "timestamptz" },
    { name: "u", sql: "uuid", kind: "uuid" },
    { name: "jb", sql: "jsonb", kind: "jsonb" },
    { name: "ai", sql: "integer[]", kind: "int[]" },
  ];
  const accounts: ColumnDef[] = [
    { name: "region", sql: "text", kind: "text" },
    { name: "id", sql: "integer", kind: "int4" },
    { name: "rev", sql: "bigint", kind: "int8" },
    { name: "amount", sql: "numeric(12,2)", kind: "decimal" },
    { name: "note", sql: "text", kind: "text" },
    { name: "doc", sql: "text", kind: "bigtext" },
    { name: "placed", sql: "timestamptz", kind: "timestamptz" },
    { name: "tags", sql: "text[]", kind: "text[]" },
    { name: "paid", sql: "boolean", kind: "bool" },
  ];
  return [
    { schema, name: "items", columns: items, key: ["id"] },
    { schema, name: "accounts", columns: accounts, key: ["region", "id"] },
  ];
}

export interface ChaosCounts {
  transactions: number;
  rolledBack: number;
  bigTransactions: number;
  bigRowsMax: number;
  inserts: number;
  updates: number;
  toastUnchanged: number;
  deletes: number;
  keyUpdates: number;
  nulls: number;
  bulkRows: number;
}

const REGIONS = ["eu", "us", "ap", "sa west"];

export class ChaosWorkload {
  /** Replaced (between stop() and start()) when PostgreSQL restarts. */
  client: pg.Client;
  readonly rng: Rng;
  readonly tables: TableDef[];
  readonly maxBigRows: number;
  /** Rows of the items table above which big transactions delete rather than insert. */
  readonly itemsCap: number;
  readonly counts: ChaosCounts = { transactions: 0, rolledBack: 0, bigTransactions: 0, bigRowsMax: 0, inserts: 0, updates: 0, toastUnchanged: 0, deletes: 0, keyUpdates: 0, nulls: 0, bulkRows: 0 };
  #rev = 0;
  #nextId = 0;
  #keys = new Map<string, string[][]>();
  #bigWanted: (() => void)[] = [];
  #running = false;
  #loop: Promise<void> | null = null;
  #error: unknown = null;
  #lastBig = 0;

  readonly paceMs: number;
  readonly bigEveryMs: number;

  constructor(client: pg.Client, schema: string, rng: Rng, options: { maxBigRows: number; itemsCap: number; paceMs: number; bigEveryMs: number }) {
    this.paceMs = options.paceMs;
    this.bigEveryMs = options.bigEveryMs;
    this.client = client;
    this.rng = rng;
    this.tables = chaosTables(schema);
    this.maxBigRows = options.maxBigRows;
    this.itemsCap = options.itemsCap;
    for (const def of this.tables) this.#keys.set(def.name, []);
  }

  get items(): TableDef {
    return this.tables[0]!;
  }

  get accounts(): TableDef {
    return this.tables[1]!;
  }

  rowCount(table: string): number {
    return this.#keys.get(table)!.length;
  }

  async create(): Promise<void> {
    const schema = this.items.schema;
    await this.client.query(`CREATE SCHEMA "${schema}"`);
    for (const def of this.tables) await this.client.query(createTableSql(def));
  }

  /** Rows for the initial snapshot, committed in chunks. */
  async preload(items: number, accounts: number): Promise<void> {
    for (let done = 0; done < items; done += 10_000) await this.inTransaction(() => this.bulkInsert(Math.min(10_000, items - done)));
    for (let done = 0; done < accounts; done += 50) {
      await this.inTransaction(async () => {
        for (let i = 0; i < Math.min(50, accounts - done); i++) await this.insert(this.accounts);
      });
    }
  }

  /** Writes until `stop()`: transactions paced by short random pauses. */
  start(): void {
    this.#running = true;
    this.#loop = (async () => {
      try {
        while (this.#running) {
          await this.transaction();
          await sleep(this.rng.int(0, this.paceMs));
        }
      } catch (error) {
        this.#error = error;
        for (const wake of this.#bigWanted.splice(0)) wake();
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    if (this.#error) throw this.#error;
  }

  /** Asks for a big transaction next; resolves right after it commits. */
  bigCommit(): Promise<void> {
    return new Promise((resolve) => this.#bigWanted.push(resolve));
  }

  private nextRev(): string {
    return String(++this.#rev);
  }

  private newKey(def: TableDef): string[] {
    const id = ++this.#nextId;
    if (def.name === "items") return [String(id % 5 === 0 ? 2n ** 60n + BigInt(id) : BigInt(id))];
    return [this.rng.pick(REGIONS), String(id)];
  }

  private value(column: ColumnDef, nullChance: number): PgParam {
    if (column.name === "rev") return this.nextRev();
    if (this.rng.chance(nullChance)) {
      this.counts.nulls++;
      return null;
    }
    // TOAST-sized values in a third of the rows: out-of-line storage, and unchanged-TOAST updates.
    if (column.kind === "bigtext") return this.rng.chance(0.35) ? bigText(this.rng, this.rng.int(2_500, 12_000)) : (randomValue("text", this.rng, VALUE_OPTIONS) as string);
    return randomValue(column.kind, this.rng, VALUE_OPTIONS, column.sql);
  }

  private whereKey(def: TableDef, offset: number): string {
    return def.key.map((k, i) => `"${k}" = $${offset + i + 1}::${paramCast(def.columns.find((c) => c.name === k)!)}`).join(" AND ");
  }

  private pick(def: TableDef): { key: string[]; index: number } | null {
    const keys = this.#keys.get(def.name)!;
    if (keys.length === 0) return null;
    const index = this.rng.int(0, keys.length - 1);
    return { key: keys[index]!, index };
  }

  private forget(def: TableDef, index: number): void {
    const keys = this.#keys.get(def.name)!;
    keys[index] = keys[keys.length - 1]!;
    keys.pop();
  }

  async insert(def: TableDef): Promise<void> {
    const key = this.newKey(def);
    const values = def.columns.map((c) => (def.key.includes(c.name) ? key[def.key.indexOf(c.name)]! : this.value(c, 0.12)));
    const placeholders = def.columns.map((c, i) => `$${i + 1}::${paramCast(c)}`).join(", ");
    await this.client.query(`INSERT INTO ${qualifiedName(def)} (${def.columns.map((c) => `"${c.name}"`).join(", ")}) VALUES (${placeholders})`, values);
    this.#keys.get(def.name)!.push(key);
    this.counts.inserts++;
  }

  async update(def: TableDef, leaveToast: boolean): Promise<void> {
    const picked = this.pick(def);
    if (!picked) return this.insert(def);
    const nonKey = def.columns.filter((c) => !def.key.includes(c.name) && c.name !== "rev" && !(leaveToast && c.kind === "bigtext"));
    const chosen = [def.columns.find((c) => c.name === "rev")!, ...nonKey.filter(() => this.rng.chance(0.35))];
    if (chosen.length === 1) chosen.push(this.rng.pick(nonKey));
    const values = chosen.map((c) => this.value(c, 0.15));
    const sets = chosen.map((c, i) => `"${c.name}" = $${i + 1}::${paramCast(c)}`).join(", ");
    await this.client.query(`UPDATE ${qualifiedName(def)} SET ${sets} WHERE ${this.whereKey(def, chosen.length)}`, [...values, ...picked.key]);
    if (leaveToast) this.counts.toastUnchanged++;
    else this.counts.updates++;
  }

  async remove(def: TableDef): Promise<void> {
    const picked = this.pick(def);
    if (!picked) return;
    await this.client.query(`DELETE FROM ${qualifiedName(def)} WHERE ${this.whereKey(def, 0)}`, picked.key);
    this.forget(def, picked.index);
    this.counts.deletes++;
  }

  /** A new primary key; half of them leave the TOASTed column unchanged (pgoutput then omits it). */
  async updateKey(def: TableDef): Promise<void> {
    const picked = this.pick(def);
    if (!picked) return;
    const next = this.newKey(def);
    const columns = [...def.key.map((k) => def.columns.find((c) => c.name === k)!), def.columns.find((c) => c.name === "rev")!];
    if (this.rng.chance(0.5)) columns.push(...def.columns.filter((c) => c.kind === "bigtext"));
    const values = columns.map((c) => (def.key.includes(c.name) ? next[def.key.indexOf(c.name)]! : this.value(c, 0.1)));
    const sets = columns.map((c, i) => `"${c.name}" = $${i + 1}::${paramCast(c)}`).join(", ");
    await this.client.query(`UPDATE ${qualifiedName(def)} SET ${sets} WHERE ${this.whereKey(def, columns.length)}`, [...values, ...picked.key]);
    this.#keys.get(def.name)![picked.index] = next;
    this.counts.keyUpdates++;
  }

  /** `n` new items in one statement, values generated by PostgreSQL (1 % of them TOAST-sized, 10 % NULLs). */
  async bulkInsert(n: number): Promise<void> {
    const keys = Array.from({ length: n }, () => this.newKey(this.items));
    const rnd = (expr: string) => `CASE WHEN random() < 0.1 THEN NULL ELSE ${expr} END`;
    await this.client.query(
      `INSERT INTO ${qualifiedName(this.items)} (id, rev, i4, i8, dec, num, f4, f8, b, t, big, by, d, ts, tstz, u, jb, ai)
       SELECT k, $2::bigint,
         ${rnd("(random() * 4e9 - 2e9)::int")}, ${rnd("(random() * 9e18 - 4.5e18)::bigint")},
         ${rnd("round((random() * 2e12 - 1e12)::numeric, 4)")}, ${rnd("round((random() * 1e6)::numeric, (random() * 8)::int)")},
         ${rnd("(random() * 1e4 - 5e3)::real")}, ${rnd("random() * 1e9 - 5e8")}, ${rnd("random() < 0.5")},
         ${rnd("md5(k::text) || ' é 中'")},
         CASE WHEN random() < 0.01 THEN (SELECT string_agg(md5(random()::text || g::text || k::text), '') FROM generate_series(1, 120) AS g) ELSE ${rnd("md5(random()::text)")} END,
         ${rnd("decode(md5(k::text), 'hex')")}, ${rnd("DATE '2000-01-01' + (random() * 20000)::int")},
         ${rnd("TIMESTAMP '2000-01-01' + random() * INTERVAL '9000 days'")}, ${rnd("TIMESTAMPTZ '2000-01-01 00:00+00' + random() * INTERVAL '9000 days'")},
         ${rnd("md5(k::text || 'u')::uuid")}, ${rnd("jsonb_build_object('k', k, 'r', round(random() * 100))")},
         ${rnd("ARRAY[(random() * 100)::int, NULL, k % 1000]::int[]")}
       FROM unnest($1::bigint[]) AS k`,
      [keys.map((k) => k[0]!), this.nextRev()],
    );
    this.#keys.get("items")!.push(...keys);
    this.counts.bulkRows += n;
  }

  /** `n` existing items updated in one statement (the TOASTed column left as it is). */
  async bulkUpdate(n: number): Promise<void> {
    const keys = this.#keys.get("items")!;
    const start = this.rng.int(0, Math.max(0, keys.length - n));
    const ids = keys.slice(start, start + n).map((k) => k[0]!);
    await this.client.query(
      `UPDATE ${qualifiedName(this.items)} SET rev = $2::bigint, i4 = CASE WHEN random() < 0.1 THEN NULL ELSE (random() * 1e6)::int END,
         t = md5(random()::text), f8 = random(), tstz = now() WHERE id = ANY($1::bigint[])`,
      [ids, this.nextRev()],
    );
    this.counts.bulkRows += ids.length;
  }

  /** `n` existing items deleted in one statement. */
  async bulkDelete(n: number): Promise<void> {
    const keys = this.#keys.get("items")!;
    const start = this.rng.int(0, Math.max(0, keys.length - n));
    const removed = keys.splice(start, n);
    await this.client.query(`DELETE FROM ${qualifiedName(this.items)} WHERE id = ANY($1::bigint[])`, [removed.map((k) => k[0]!)]);
    this.counts.bulkRows += removed.length;
  }

  private async step(): Promise<void> {
    const def = this.rng.chance(0.6) ? this.items : this.accounts;
    const r = this.rng.next();
    if (r < 0.35) await this.insert(def);
    else if (r < 0.6) await this.update(def, false);
    else if (r < 0.72) await this.update(def, true);
    else if (r < 0.9) await this.remove(def);
    else await this.updateKey(def);
  }

  private async bigStep(): Promise<void> {
    const n = this.rng.int(Math.min(1_000, this.maxBigRows), this.maxBigRows);
    const size = this.rowCount("items");
    const r = this.rng.next();
    if (size + n <= this.itemsCap && (r < 0.45 || size < n)) await this.bulkInsert(n);
    else if (r < 0.75) await this.bulkUpdate(n);
    else await this.bulkDelete(n);
    this.counts.bigRowsMax = Math.max(this.counts.bigRowsMax, n);
  }

  private async inTransaction(body: () => Promise<void>, rollback = false): Promise<void> {
    await this.client.query("BEGIN");
    try {
      await body();
    } catch (error) {
      await this.client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
    if (rollback) {
      await this.client.query("ROLLBACK");
      await this.reloadKeys();
      this.counts.rolledBack++;
    } else {
      await this.client.query("COMMIT");
      this.counts.transactions++;
    }
  }

  /** After a rollback: the keys as PostgreSQL has them. */
  private async reloadKeys(): Promise<void> {
    for (const def of this.tables) {
      const result = await this.client.query<Record<string, string>>(`SELECT ${def.key.map((k) => `"${k}"::text AS "${k}"`).join(", ")} FROM ${qualifiedName(def)}`);
      this.#keys.set(def.name, result.rows.map((row) => def.key.map((k) => row[k]!)));
    }
  }

  /** One transaction: small (1–8 statements), or big when asked for or by chance; 3 % rolled back. */
  async transaction(): Promise<void> {
    const wanted = this.#bigWanted.splice(0);
    // Big transactions by chance at most every few seconds, so the sinks are not buried under bulk rows.
    const big = wanted.length > 0 || (Date.now() - this.#lastBig > this.bigEveryMs && this.rng.chance(0.01));
    if (big) this.#lastBig = Date.now();
    const rollback = wanted.length === 0 && this.rng.chance(0.03);
    await this.inTransaction(async () => {
      if (big) {
        for (let i = this.rng.int(1, 2); i > 0; i--) await this.bigStep();
        this.counts.bigTransactions++;
      }
      for (let i = this.rng.int(1, 8); i > 0; i--) await this.step();
    }, rollback);
    for (const wake of wanted) wake();
  }
}
