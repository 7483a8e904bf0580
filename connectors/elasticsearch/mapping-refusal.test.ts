/**
 * Review of 689cd96: every non-retriable refusal of a mapping change advised rebuilding the index, also a refused login
 * (a rotated API key during a schema change read "the mapping holds something Sluice did not put there... rebuild"), an
 * index template that maps the field and the field limit, where the rebuild's new index is refused the same way.
 * Elasticsearch's answers below are the 9.4 server's (the field limit and a template's field: checked on it).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../errors.ts";
import { fieldInMapping, mappingRefusal, refusesLogin, shellWord } from "./mapping-refusal.ts";
import { liftsByItself } from "../sinks/errors.ts";

const change = { sink: "search", table: "pg.shop.orders", tableArg: "shop.orders", index: "orders__g1", added: ["w"], widened: [] };
const noTemplate = async () => null;

/** As Indices' calls fail: a SluiceError whose cause is the client's ResponseError with Elasticsearch's answer. */
function refusal(status: number, type: string, reason: string, code = "SINK_REQUEST_FAILED"): SluiceError {
  const cause = Object.assign(new Error(`${type}: ${reason}`), { meta: { statusCode: status, body: { error: { type, reason, root_cause: [{ type, reason }] }, status } } });
  return new SluiceError(`Elasticsearch update mapping failed: ${type}: ${reason}`, { code, cause });
}

test("a refused login or privilege is passed through with its own code, with no mapping advice", async () => {
  const unauthorized = refusal(401, "security_exception", "unable to authenticate with provided credentials", "SINK_AUTH_FAILED");
  assert.equal(await mappingRefusal(unauthorized, change, noTemplate), unauthorized);
  const forbidden = refusal(403, "security_exception", "action [indices:admin/mapping/put] is unauthorized for API key id [k] of user [u]");
  assert.equal(await mappingRefusal(forbidden, change, noTemplate), forbidden, "a 403 is the key's privileges, whatever code the request's error has");
  assert.equal(refusesLogin(refusal(400, "illegal_argument_exception", "mapper [w] cannot be changed from type [long] to [text]")), false);
});

test("a cluster block (403: index.blocks.write, the flood-stage disk block) is no login refusal: the table halts and goes on by itself once it is lifted", async () => {
  const blocked = refusal(403, "cluster_block_exception", "index [shop.orders__v1] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];");
  assert.equal(refusesLogin(blocked), false);
  const error = await mappingRefusal(blocked, change, noTemplate);
  assert.equal(liftsByItself(error), true, String(error));
  assert.match(error.message, /the target refuses writes: .*flood-stage watermark/);
});

test("a field mapped by hand: the rebuild to run, naming the field", async () => {
  const error = (await mappingRefusal(refusal(400, "illegal_argument_exception", "mapper [w] cannot be changed from type [long] to [text]"), change, noTemplate)) as SluiceError;
  assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
  assert.match(error.message, /refused the mapping change \(adding "w"\).*holds the field "w", which Sluice did not put there/s);
  assert.ok(error.message.includes("(sluice replay --sink search --from-beginning --rebuild --table shop.orders --execute), then sluice halted retry"), error.message);
});

test("a field an index template maps: names the template, no rebuild alone (it would fail the same way)", async () => {
  const asked: string[] = [];
  const template = async (field: string) => {
    asked.push(field);
    return { type: "long" };
  };
  const error = (await mappingRefusal(refusal(400, "illegal_argument_exception", "mapper [w] cannot be changed from type [long] to [text]"), change, template)) as SluiceError;
  assert.deepEqual(asked, ["w"]);
  assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
  assert.match(error.message, /an index template matching orders__g1 maps the field "w" \(\{"type":"long"\}.*_simulate_index\/orders__g1.*a rebuild's new index would be refused the same way: take the field out of the template/s);
  assert.doesNotMatch(error.message, /which Sluice did not put there/);
});

test("the field limit: names the setting, no rebuild", async () => {
  const error = (await mappingRefusal(refusal(400, "illegal_argument_exception", "Limit of total fields [2] has been exceeded"), change, async () => assert.fail("no field to look up"))) as SluiceError;
  assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
  assert.match(error.message, /field limit \(index\.mapping\.total_fields\.limit, 2\), and a rebuild's new index would meet the same limit: raise it on the index \(PUT orders__g1\/_settings/);
  assert.doesNotMatch(error.message, /--rebuild/);
});

test("another refusal naming no field: Elasticsearch's words, no rebuild advice", async () => {
  const error = (await mappingRefusal(refusal(400, "validation_exception", "Validation Failed: 1: mapping source is empty;"), change, noTemplate)) as SluiceError;
  assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
  assert.match(error.message, /Validation Failed.*fix the cause, then sluice halted retry$/s);
  assert.doesNotMatch(error.message, /--rebuild|Sluice did not put there/);
});

test("--table and --sink are quoted when a shell would split or expand them", async () => {
  const odd = { ...change, sink: "search", tableArg: "shop.order items's" };
  const error = await mappingRefusal(refusal(400, "mapper_parsing_exception", "Failed to parse mapping: mapper [w] cannot be changed from type [long] to [text]"), odd, noTemplate);
  assert.ok(error.message.includes(`--table 'shop.order items'\\''s' --execute`), error.message);
  assert.equal(shellWord("shop.orders"), "shop.orders");
  assert.equal(shellWord("shop.$x"), "'shop.$x'");
});

test("fieldInMapping follows object paths", () => {
  const mappings = { properties: { a: { properties: { b: { type: "long" } } }, w: { type: "keyword" } } };
  assert.deepEqual(fieldInMapping(mappings, "w"), { type: "keyword" });
  assert.deepEqual(fieldInMapping(mappings, "a.b"), { type: "long" });
  assert.equal(fieldInMapping(mappings, "a.c"), null);
  assert.equal(fieldInMapping({}, "w"), null);
});
