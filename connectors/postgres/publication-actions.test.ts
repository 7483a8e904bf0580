import { test } from "node:test";
import assert from "node:assert/strict";
import { gapKey, gapWarning, publicationGap } from "./publication-actions.ts";

const plain = { schema: "app", table: "orders", kind: "r" };
const parted = { schema: "app", table: "events", kind: "p" };
const all = { unpublished: [], viaRoot: true } as const;

test("a publication that publishes every operation via the root keeps nothing from the stream", () => {
  assert.equal(publicationGap(all, [plain, parted], 150000), null);
  assert.equal(gapKey(null), "");
});

test("operations left out concern every captured table; not via the root only the partitioned ones, from PostgreSQL 13", () => {
  assert.deepEqual(publicationGap({ unpublished: ["delete"], viaRoot: true }, [plain, parted], 150000), { unpublished: ["delete"], viaRoot: true, tables: ["app.orders", "app.events"] });
  assert.deepEqual(publicationGap({ unpublished: [], viaRoot: false }, [plain, parted], 150000), { unpublished: [], viaRoot: false, tables: ["app.events"] });
  assert.equal(publicationGap({ unpublished: [], viaRoot: false }, [plain], 150000), null, "no partitioned table: nothing lost");
  assert.equal(publicationGap({ unpublished: [], viaRoot: false }, [parted], 120000), null, "before 13 there is no such option");
});

test("the warning says what is not captured, that Sluice does not change it, and what to run if it is not meant", () => {
  const gap = publicationGap({ unpublished: ["update", "delete"], viaRoot: false }, [plain, parted], 160000)!;
  const text = gapWarning("pub", gap);
  assert.match(text, /publication "pub" does not publish update, delete .* and does not publish via the partition root/);
  assert.match(text, /Sluice does not change the publication/);
  assert.match(text, /If this is intended, nothing to do/);
  assert.match(text, /run ALTER PUBLICATION "pub" SET \(publish = 'insert, update, delete, truncate', publish_via_partition_root = true\), then/);
  assert.match(text, /sluice snapshot -c CONFIG --table app\.orders --execute; sluice snapshot -c CONFIG --table app\.events --execute$/);
  assert.notEqual(gapKey(gap), gapKey(publicationGap({ unpublished: ["delete"], viaRoot: false }, [plain, parted], 160000)), "another state is told again");
});

test("a long list of tables names the first few and the count", () => {
  const many = Array.from({ length: 12 }, (_, i) => ({ schema: "s", table: `t${i}`, kind: "r" }));
  const text = gapWarning("pub", publicationGap({ unpublished: ["truncate"], viaRoot: true }, many, 160000)!);
  assert.equal(text.match(/sluice snapshot/g)?.length, 5);
  assert.match(text, /each of the 12 tables/);
  assert.doesNotMatch(text, /publish_via_partition_root/);
});
