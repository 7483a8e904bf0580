import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { keyAdminLeaseTtlMs } from "./forget-command.ts";
import { sinkLeaseTtlMs } from "./sink-lease.ts";

const refusedNaming = (name: string) => (error: unknown) => error instanceof SluiceError && error.code === "CONFIG_INVALID" && error.message.includes(name);

test("SLUICE_KEY_ADMIN_LEASE_MS: unset or empty is the default 30 s; a whole number of milliseconds replaces it; anything else is refused naming it", () => {
  assert.equal(keyAdminLeaseTtlMs({}), 30_000);
  assert.equal(keyAdminLeaseTtlMs({ SLUICE_KEY_ADMIN_LEASE_MS: "" }), 30_000);
  assert.equal(keyAdminLeaseTtlMs({ SLUICE_KEY_ADMIN_LEASE_MS: "5000" }), 5_000);
  for (const bad of ["5s", "0", "999"]) assert.throws(() => keyAdminLeaseTtlMs({ SLUICE_KEY_ADMIN_LEASE_MS: bad }), refusedNaming("SLUICE_KEY_ADMIN_LEASE_MS"));
});

test("SLUICE_SINK_LEASE_MS: unset or empty leaves the sink runner's default; a whole number of milliseconds replaces it; anything else is refused naming it", () => {
  assert.equal(sinkLeaseTtlMs({}), undefined);
  assert.equal(sinkLeaseTtlMs({ SLUICE_SINK_LEASE_MS: " " }), undefined);
  assert.equal(sinkLeaseTtlMs({ SLUICE_SINK_LEASE_MS: "3000" }), 3_000);
  for (const bad of ["3s", "0", "999"]) assert.throws(() => sinkLeaseTtlMs({ SLUICE_SINK_LEASE_MS: bad }), refusedNaming("SLUICE_SINK_LEASE_MS"));
});
