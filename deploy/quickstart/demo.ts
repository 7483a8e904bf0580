/**
 * The quickstart's demo database: `setup` creates the `shop` schema with some customers and
 * orders (idempotent); `workload` keeps placing, updating and cancelling orders until stopped.
 */
import pg from "pg";

const client = new pg.Client({
  host: "127.0.0.1",
  port: Number(process.env["SLUICE_PG_PORT"] || 55432),
  user: process.env["SLUICE_PG_USER"] || "sluice",
  password: process.env["SLUICE_PG_PASSWORD"] || "sluice",
  database: process.env["SLUICE_PG_DATABASE"] || "sluice",
});

const SETUP = `
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS shop.orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customers (id),
  status text NOT NULL DEFAULT 'placed',
  total numeric(12, 2) NOT NULL,
  items jsonb NOT NULL DEFAULT '[]',
  placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO shop.customers (name, email)
SELECT 'Customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 100) g
ON CONFLICT (email) DO NOTHING;
INSERT INTO shop.orders (customer_id, total, items)
SELECT 1 + (g % 100), round((random() * 200)::numeric, 2), jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g % 17), 'qty', 1 + g % 3))
FROM generate_series(1, 500) g
WHERE NOT EXISTS (SELECT 1 FROM shop.orders);
`;

async function workload(): Promise<void> {
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  process.on("SIGINT", () => (stopping = true));
  while (!stopping) {
    await client.query(
      `INSERT INTO shop.orders (customer_id, total, items) VALUES (1 + floor(random() * 100)::int, round((random() * 200)::numeric, 2), jsonb_build_array(jsonb_build_object('sku', 'SKU-' || floor(random() * 17)::int, 'qty', 1)))`,
    );
    await client.query(`UPDATE shop.orders SET status = CASE status WHEN 'placed' THEN 'paid' WHEN 'paid' THEN 'shipped' ELSE status END WHERE id = (SELECT id FROM shop.orders WHERE status <> 'shipped' ORDER BY random() LIMIT 1)`);
    if (Math.random() < 0.1) await client.query(`DELETE FROM shop.orders WHERE id = (SELECT id FROM shop.orders WHERE status = 'placed' ORDER BY random() LIMIT 1)`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

await client.connect();
try {
  if (process.argv[2] === "setup") await client.query(SETUP);
  else if (process.argv[2] === "workload") await workload();
  else if (process.argv[2] === "clean") {
    await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'sluice_quickstart' AND NOT active");
    await client.query("DROP PUBLICATION IF EXISTS sluice_quickstart");
  } else throw new Error("usage: demo.ts setup | workload | clean");
} finally {
  await client.end();
}
