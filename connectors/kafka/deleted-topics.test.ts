/** What capture does with a declared topic Kafka answered a write to as unknown (deleted-topics.ts); the broker side is in kafka.int.test.ts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TopicSpec } from "../topics/contract.ts";
import { unknownTopicAction } from "./deleted-topics.ts";

const found = (name: string, partitions: number, compacted: boolean): TopicSpec => ({ name, partitions, compacted, retentionMs: compacted ? null : 604_800_000, retentionBytes: null });

test("a deleted data topic is created again; a deleted internal topic is a permanent TOPIC_DELETED naming it and what is lost", () => {
  assert.equal(unknownTopicAction("shop", "shop.pg.public.orders", { partitions: 3, compacted: true }, undefined), "recreate");
  const cases: [string, RegExp][] = [
    ["shop.sluice.schemas", /schema registry.*earlier schema ids, could not be decoded.*snapshot\.mode: when-needed/],
    ["shop.sluice.checkpoints", /checkpoints.*layouts.*snapshot\.mode: when-needed/],
    ["shop.sluice.schema-history", /schema histories/],
    ["shop.sluice.topic-ids", /identities.*rebuild/],
    ["shop.sluice.control", /Sluice's own topics/],
    ["shop.sluice.halted.pg", /Sluice's own topics/],
  ];
  for (const [name, lost] of cases) {
    assert.throws(
      () => unknownTopicAction("shop", name, { partitions: 1, compacted: true }, undefined),
      (error: { code?: string; retriable?: boolean; message: string; context?: { topic?: string } }) => {
        assert.equal(error.code, "TOPIC_DELETED");
        assert.equal(error.retriable, false);
        assert.equal(error.context?.topic, name);
        assert.ok(error.message.includes(`topic ${name} was deleted`), error.message);
        assert.match(error.message, lost);
        return true;
      },
      name,
    );
  }
});

test("a topic found again is written when it has the layout written (more partitions are fine), and refused for good with TOPIC_REPLACED when another client created it with fewer partitions or another cleanup policy", () => {
  const name = "shop.pg.public.orders";
  assert.equal(unknownTopicAction("shop", name, { partitions: 3, compacted: true }, found(name, 3, true)), "write");
  assert.equal(unknownTopicAction("shop", name, { partitions: 3, compacted: true }, found(name, 4, true)), "write");
  assert.equal(unknownTopicAction("shop", name, { partitions: 1, compacted: false }, found(name, 1, false)), "write", "a legacy uncompacted topic adopted as it was");
  assert.equal(unknownTopicAction("shop", "shop.sluice.schemas", { partitions: 1, compacted: false }, found("shop.sluice.schemas", 1, false)), "write");
  const refused = (written: { partitions: number; compacted: boolean }, existing: TopicSpec, what: RegExp) =>
    assert.throws(() => unknownTopicAction("shop", existing.name, written, existing), (error: { code?: string; retriable?: boolean; message: string }) => {
      assert.equal(error.code, "TOPIC_REPLACED");
      assert.equal(error.retriable, false);
      assert.match(error.message, what);
      assert.match(error.message, /auto\.create\.topics\.enable/);
      return true;
    });
  refused({ partitions: 3, compacted: true }, found(name, 1, false), /1 partition\(s\), Sluice writes 3; cleanup\.policy delete, Sluice writes it compacted/);
  refused({ partitions: 1, compacted: true }, found(name, 1, false), /^topic shop\.pg\.public\.orders .*it now has cleanup\.policy delete/);
  refused({ partitions: 1, compacted: true }, found("shop.sluice.checkpoints", 1, false), /cleanup\.policy delete/);
});
