import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../../config/load.ts";
import { erasureRequests } from "./erasure.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-erasure-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const masterFile = join(dir, "master.key");
writeFileSync(masterFile, "cd".repeat(32));

const yaml = `
name: shop
personal_data:
  master_key_file: ${masterFile}
sources:
  - name: pg
    kind: postgres
    host: 127.0.0.1
    port: 5432
    database: shopdb
    user: u
    password: p
    tables: ["app.*"]
    governance:
      tables:
        app.customers:
          personal: { subject: id, columns: [email] }
  - name: my
    kind: mysql
    host: 127.0.0.1
    port: 3306
    user: u
    password: p
    server_id: 7
    tables: ["crm.*"]
    governance:
      tables:
        crm.customers:
          personal: { subject: id, columns: [email] }
sinks:
  - name: wh
    kind: duckdb
    path: ${join(dir, "wh.duckdb")}
`;

test("an erasure names the table as its source does (a PostgreSQL table's database is the source's), so the sink's target claims know it", () => {
  const config = loadConfigText("c.yaml", yaml);
  const sink = config.sinks[0]!;
  assert.deepEqual(erasureRequests(config, sink, "pg", "1").map((r) => r.table), [{ source: "pg", database: "shopdb", schema: "app", table: "customers" }]);
  assert.deepEqual(erasureRequests(config, sink, "my", "1").map((r) => r.table), [{ source: "my", database: "crm", schema: "crm", table: "customers" }]);
});
