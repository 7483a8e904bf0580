import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { createLogger } from "../runtime/logger.ts";
import { haltedHandler } from "./halted-admin.ts";
import type { ReleasableSink } from "./halted-admin.ts";
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
