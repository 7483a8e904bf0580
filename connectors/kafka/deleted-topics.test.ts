/** What capture does with a declared topic Kafka answered a write to as unknown (deleted-topics.ts); the broker side is in kafka.int.test.ts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TopicSpec } from "../topics/contract.ts";
import { unknownTopicAction, writtenLayoutOf } from "./deleted-topics.ts";

const WEEK = 604_800_000;
/** A topic as describeTopic reads it: a compacted one without retention, else deleting after `retentionMs`. */
const found = (name: string, partitions: number, compacted: boolean, retentionMs: number | null = compacted ? null : WEEK): TopicSpec => ({ name, partitions, compacted, retentionMs, retentionBytes: null });
const layout = (partitions: number, compacted: boolean, retentionMs: number | null = compacted ? null : WEEK) => ({ partitions, compacted, retentionMs, retentionBytes: null });

test("a deleted data topic is created again; a deleted internal topic is TOPIC_DELETED naming it and what is lost, waited for (retriable: a broker's stale answer passes)", () => {
  assert.equal(unknownTopicAction("shop", "shop.pg.public.orders", layout(3, true), undefined), "recreate");
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
      () => unknownTopicAction("shop", name, layout(1, true), undefined),
      (error: { code?: string; retriable?: boolean; message: string; context?: { topic?: string } }) => {
        assert.equal(error.code, "TOPIC_DELETED");
        assert.equal(error.retriable, true);
        assert.equal(error.context?.topic, name);
        assert.ok(error.message.includes(`Kafka does not know topic ${name}: if it was deleted`), error.message);
        assert.match(error.message, lost);
        return true;
      },
      name,
    );
  }
});

test("a topic found again is written when it has the layout written (more partitions are fine), and refused with TOPIC_REPLACED (waited for) when it has fewer partitions, another cleanup policy or a limit on a topic kept for ever; another retention on a topic that has one is an operator's tuning, written", () => {
  const name = "shop.pg.public.orders";
  assert.equal(unknownTopicAction("shop", name, layout(3, true), found(name, 3, true)), "write");
  assert.equal(unknownTopicAction("shop", name, layout(3, true), found(name, 4, true)), "write");
  assert.equal(unknownTopicAction("shop", name, layout(1, false), found(name, 1, false)), "write", "a legacy uncompacted topic adopted as it was");
  assert.equal(unknownTopicAction("shop", "shop.sluice.schemas", layout(1, false), found("shop.sluice.schemas", 1, false)), "write");
  const refused = (written: ReturnType<typeof layout>, existing: TopicSpec, what: RegExp) =>
    assert.throws(() => unknownTopicAction("shop", existing.name, written, existing), (error: { code?: string; retriable?: boolean; message: string }) => {
      assert.equal(error.code, "TOPIC_REPLACED");
      assert.equal(error.retriable, true);
      assert.match(error.message, what);
      assert.match(error.message, /auto\.create\.topics\.enable/);
      return true;
    });
  refused(layout(3, true), found(name, 1, false), /1 partition\(s\), Sluice writes 3; cleanup\.policy delete, Sluice writes it compacted/);
  refused(layout(1, true), found(name, 1, false), /^topic shop\.pg\.public\.orders .*it now has cleanup\.policy delete/);
  // Retention lowered (or raised) by an operator on a topic that deletes by retention: written, whatever broker answered unknown.
  assert.equal(unknownTopicAction("shop", name, layout(3, false, WEEK), found(name, 3, false, 3_600_000)), "write");
  assert.equal(unknownTopicAction("shop", name, layout(3, false, WEEK), found(name, 3, false, 30 * WEEK)), "write");
  refused(layout(3, false, null), found(name, 3, false, WEEK), /retention\.ms 604800000, Sluice writes it with -1.*set them back/);
  refused(layout(1, true), found("shop.sluice.checkpoints", 1, false), /cleanup\.policy delete/);
  // The registry's journal, kept for ever, found again as the broker auto-creates a topic: deleting after 7 days.
  refused(layout(1, false, null), found("shop.sluice.schemas", 1, false), /retention\.ms 604800000, Sluice writes it with -1/);
  assert.equal(unknownTopicAction("shop", "shop.sluice.schemas", layout(1, false, null), found("shop.sluice.schemas", 1, false, null)), "write");
});

test("the layout written for a spec is the one describeTopic reads back: retention only where the policy deletes", () => {
  assert.deepEqual(writtenLayoutOf({ name: "t", partitions: 3, compacted: true, retentionMs: null, retentionBytes: null }), layout(3, true));
  assert.deepEqual(writtenLayoutOf({ name: "t", partitions: 3, compacted: true, retentionMs: WEEK, retentionBytes: null }), layout(3, true, WEEK));
  assert.deepEqual(writtenLayoutOf({ name: "t", partitions: 1, compacted: false, retentionMs: null, retentionBytes: null }), layout(1, false, null));
});
