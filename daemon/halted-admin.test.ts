import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { createLogger } from "../runtime/logger.ts";
import { haltedHandler } from "./halted-admin.ts";
import type { ReleasableCapture, ReleasableSink } from "./halted-admin.ts";
import { NOT_HALTED } from "./halted.ts";
import { HttpServer } from "./http-server.ts";

test("a release the request asks wrongly is answered 4xx with the error's code (a --through before the halting record: 400), a failing release 500", async () => {
  const failures: Record<string, Error> = {
    "public.early": new SluiceError("--through 3 is before the record that halted the table (t:0:7)", { code: "HALT_SKIP_THROUGH_INVALID" }),
    "public.free": new SluiceError("public.free is not halted", { code: NOT_HALTED }),
    "public.broken": new SluiceError("the topic log did not answer", { code: "LOG_UNAVAILABLE" }),
  };
  const sink: ReleasableSink = {
    release: (table) => Promise.reject(failures[table] ?? new Error(`no such test table ${table}`)),
  };
  const server = new HttpServer(createLogger("silent"));
  server.mount("/sinks", haltedHandler(new Map([["wh", sink]])));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const skip = async (table: string) => {
      const answer = await fetch(`http://127.0.0.1:${port}/sinks/wh/halted/skip`, { method: "POST", body: JSON.stringify({ table, execute: true, through: "3" }) });
      return { status: answer.status, body: (await answer.json()) as { code?: string; error: string } };
    };
    const early = await skip("public.early");
    assert.equal(early.status, 400);
    assert.equal(early.body.code, "HALT_SKIP_THROUGH_INVALID");
    assert.match(early.body.error, /is before the record that halted the table/);
    assert.equal((await skip("public.free")).status, 404);
    assert.deepEqual(await skip("public.broken"), { status: 500, body: { error: "the topic log did not answer", code: "LOG_UNAVAILABLE" } });
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("a source's skip takes \"through\" (a parking topic offset, or \"pending\") and hands it to the capture as a number; a retry with it is refused 400", async () => {
  const asked: unknown[] = [];
  const capture: ReleasableCapture = {
    release: async (table, action, execute, through) => {
      asked.push([table, action, execute, through]);
      return { source: "pg", table, action, executed: execute, error: "bad", code: "AVRO_VALUE_INVALID", parkingTopic: "d.sluice.halted.pg", parked: 3, description: "x" };
    },
  };
  const server = new HttpServer(createLogger("silent"));
  server.mount("/sources", haltedHandler(new Map(), new Map([["pg", capture]])));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const post = (action: string, body: unknown) => fetch(`http://127.0.0.1:${port}/sources/pg/halted/${action}`, { method: "POST", body: JSON.stringify(body) });
    assert.equal((await post("skip", { table: "public.t", execute: true, through: "18446744073709551615" })).status, 200);
    assert.equal((await post("skip", { table: "public.t", execute: false, through: "pending" })).status, 200);
    assert.equal((await post("skip", { table: "public.t", execute: false })).status, 200);
    assert.equal((await post("retry", { table: "public.t", execute: false, through: "pending" })).status, 400);
    // Not a dry run answered 200: a script sending "true" or 1 took the skip for done.
    for (const execute of ["true", 1, null]) {
      const refused = await post("skip", { table: "public.t", execute });
      assert.equal(refused.status, 400, `execute ${JSON.stringify(execute)}`);
      assert.match(((await refused.json()) as { error: string }).error, /"execute" must be true or false \(a JSON boolean\), not/);
    }
    assert.deepEqual(asked, [
      ["public.t", "skip", true, 18446744073709551615n],
      ["public.t", "skip", false, "pending"],
      ["public.t", "skip", false, null],
    ]);
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("\"force\" (sluice halted retry --force) is handed to a sink's retry; refused 400 elsewhere, and a release refusing it (HALT_FORCE_INVALID) is answered 400", async () => {
  const asked: unknown[] = [];
  const sink: ReleasableSink = {
    release: async (table, action, execute, through, force) => {
      asked.push([table, action, execute, through, force]);
      if (table === "public.poison") throw new SluiceError("table public.poison halted for a reason --force does not overrule", { code: "HALT_FORCE_INVALID" });
      return { sink: "wh", table, topic: "t", partition: 0, offset: "7", error: "emptied", action, executed: execute, description: "reading it again" };
    },
  };
  const server = new HttpServer(createLogger("silent"));
  server.mount("/sinks", haltedHandler(new Map([["wh", sink]])));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const post = (action: string, body: unknown) => fetch(`http://127.0.0.1:${port}/sinks/wh/halted/${action}`, { method: "POST", body: JSON.stringify(body) });
    assert.equal((await post("retry", { table: "public.t", execute: true, force: true })).status, 200);
    assert.equal((await post("retry", { table: "public.t", execute: false })).status, 200);
    assert.equal((await post("skip", { table: "public.t", execute: false, force: true })).status, 400);
    assert.equal((await post("retry", { table: "public.t", execute: false, force: "yes" })).status, 400);
    const refused = await post("retry", { table: "public.poison", execute: true, force: true });
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { code: string }).code, "HALT_FORCE_INVALID");
    assert.deepEqual(asked, [
      ["public.t", "retry", true, null, true],
      ["public.t", "retry", false, null, false],
      ["public.poison", "retry", true, null, true],
    ]);
  } finally {
    server.dropConnections();
    await server.close();
  }
});
