import assert from "node:assert/strict";
import { test } from "node:test";
import type { IncomingMessage } from "node:http";
import { ByteBudget } from "./byte-budget.ts";
import { BadRequestError, BodyTooLargeError, optionalNameList, readJsonObject, RequestBody } from "./request-body.ts";
import type { BodyReader } from "./request-body.ts";

const bodyOf =
  (text: string): BodyReader =>
  () =>
    Promise.resolve(Buffer.from(text, "utf8"));

test("readJsonObject returns the object when it holds only the fields the endpoint takes, and {} for an empty body", async () => {
  assert.deepEqual(await readJsonObject(bodyOf('{"tables": ["s.t"]}'), "{tables}", ["tables"]), { tables: ["s.t"] });
  assert.deepEqual(await readJsonObject(bodyOf("  "), "{tables}", ["tables"]), {});
});

test("readJsonObject refuses a field the endpoint does not take, naming it and the fields it takes", async () => {
  // {"table": [...]} given to rebuild (which reads "tables") rebuilt every table; so did {"dry_run": true}.
  for (const text of ['{"table": ["opx.items"]}', '{"dry_run": true}', '{"tables": [], "execute": false}']) {
    await assert.rejects(readJsonObject(bodyOf(text), '{"tables": [...]}', ["tables"]), (error: unknown) => {
      assert.ok(error instanceof BadRequestError, String(error));
      assert.match(error.message, /does not take \("(table|dry_run|execute)"; it takes "tables"\)/);
      return true;
    });
  }
});

test("readJsonObject still refuses what is not a JSON object", async () => {
  for (const text of ["[]", "null", "nope", '"x"']) {
    await assert.rejects(readJsonObject(bodyOf(text), "{tables}", ["tables"]), /the body must be a JSON object/);
  }
});

test("optionalNameList: absent is undefined (every table), a list of names is taken, an empty list or a non-list is refused naming the field", () => {
  assert.equal(optionalNameList({}, "tables", "schema.table names"), undefined);
  assert.deepEqual(optionalNameList({ tables: ["s.t", "s.u"] }, "tables", "schema.table names"), ["s.t", "s.u"]);
  // {"tables": []} rebuilt every table of the sink.
  assert.throws(() => optionalNameList({ tables: [] }, "tables", "schema.table names"), (error: unknown) => {
    assert.ok(error instanceof BadRequestError, String(error));
    assert.match(error.message, /^"tables" is an empty list, which names no table: leave "tables" out for every table/);
    return true;
  });
  for (const value of [null, "s.t", [1], ["s.t", null], {}]) {
    assert.throws(() => optionalNameList({ tables: value }, "tables", "schema.table names"), /"tables" must be a list of schema\.table names$/);
  }
});

test("a body over an endpoint's own limit (below http.max_body_bytes) is refused naming the endpoint's limit, not http.max_body_bytes", async () => {
  const req = { headers: { "content-length": "100000" }, readableEnded: false, destroyed: false } as unknown as IncomingMessage;
  const body = new RequestBody(req, 4 * 2 ** 20, new ByteBudget(16 * 2 ** 20));
  await assert.rejects(body.read(64 * 1024), (error: unknown) => {
    assert.ok(error instanceof BodyTooLargeError);
    assert.equal(error.message, "the request body (100000 bytes) is larger than the 65536 bytes this endpoint takes");
    return true;
  });
  const server = new RequestBody({ ...req, headers: { "content-length": String(5 * 2 ** 20) } } as unknown as IncomingMessage, 4 * 2 ** 20, new ByteBudget(16 * 2 ** 20));
  await assert.rejects(server.read(), /is larger than the 4194304 bytes this server takes \(http\.max_body_bytes\)$/);
});
