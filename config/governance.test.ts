import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigFile, loadConfigText } from "./load.ts";
import { secretValues } from "./redact.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-governance-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const source = (governance: string) => `name: shop
sources:
  - name: pg
    kind: postgres
    database: app
    user: u
    tables: [public.*]
    governance:
${governance}
`;

test("governance: transforms, checks and freshness are read with their defaults", () => {
  const config = loadConfigText(
    "c.yaml",
    source(`      hash_key: "0123456789abcdef0123"
      freshness: { max_quiet: 30m }
      tables:
        public.customers:
          transforms:
            email: { kind: hash }
            phone: { kind: mask }
          checks:
            - { check: range, column: amount, min: 0, max: 10 }
            - { check: regex, column: sku, pattern: "^[A-Z]+$", action: dead-letter }`),
    { env: {} },
  );
  const governance = config.sources[0]!.governance!;
  assert.equal(governance.freshness?.max_quiet, 30 * 60_000);
  const table = governance.tables["public.customers"]!;
  assert.deepEqual(table.transforms["phone"], { kind: "mask", keep_last: 4 });
  assert.deepEqual(
    table.checks.map((c) => `${c.check}:${c.action}`),
    ["range:warn", "regex:dead-letter"],
  );
});

test("governance: a hash transform needs hash_key; a bad pattern or transform kind is refused where it is written", () => {
  assert.throws(() => loadConfigText("c.yaml", source(`      tables:\n        public.t: { transforms: { email: { kind: hash } } }`), { env: {} }), /hash_key: the hash transform of public\.t\.email needs hash_key \(or hash_key_file\)/);
  assert.throws(() => loadConfigText("c.yaml", source(`      tables:\n        public.t: { checks: [{ check: regex, column: a, pattern: "(" }] }`), { env: {} }), /pattern: expected a valid regular expression/);
  assert.throws(() => loadConfigText("c.yaml", source(`      tables:\n        public.t: { transforms: { a: { kind: encrypt } } }`), { env: {} }), /transforms\.a\.kind/);
});

test("governance: hash_key_file is read like any secret file and its value is a secret (kept out of logs)", () => {
  writeFileSync(join(dir, "hash.key"), "a-hash-key-of-some-length\n");
  const file = join(dir, "sluice.yaml");
  writeFileSync(file, source(`      hash_key_file: hash.key\n      tables:\n        public.t: { transforms: { email: { kind: hash } } }`));
  const config = loadConfigFile(file, { env: {} });
  assert.equal(config.sources[0]!.governance!.hash_key, "a-hash-key-of-some-length");
  assert.ok(secretValues(config).includes("a-hash-key-of-some-length"));
});

test("governance: personal columns name a subject column, need personal_data.master_key_file, and exclude transforms on the same columns", () => {
  const personal = `      tables:
        public.customers:
          personal: { subject: customer_id, columns: [email, phone] }`;
  const config = loadConfigText("c.yaml", `${source(personal)}personal_data:\n  master_key_file: /run/secrets/master\n`, { env: {} });
  assert.deepEqual(config.sources[0]!.governance!.tables["public.customers"]!.personal, { subject: "customer_id", columns: ["email", "phone"] });
  assert.deepEqual(config.personal_data, { master_key_file: "/run/secrets/master", previous_master_key_files: [] });
  assert.throws(() => loadConfigText("c.yaml", source(personal), { env: {} }), /personal columns \(public\.customers\) need personal_data\.master_key_file/);
  const both = `      hash_key: "0123456789abcdef0123"
      tables:
        public.customers:
          transforms: { email: { kind: hash } }
          personal: { subject: customer_id, columns: [email, customer_id] }`;
  assert.throws(
    () => loadConfigText("c.yaml", `${source(both)}personal_data:\n  master_key_file: /k\n`, { env: {} }),
    (e: Error) => /subject column customer_id cannot be personal itself/.test(e.message) && /column email is personal: it cannot have a transform too/.test(e.message),
  );
});
