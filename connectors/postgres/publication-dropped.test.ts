/**
 * A dropped publication, told without a server: pgoutput's error matched by SQLSTATE and name in any language, and
 * the catalog look's finding (PostgreSQL 18 does not fail the stream) failing the stream as that error does.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { SluiceError } from "../errors.ts";
import { isPublicationDropped, publicationDroppedError } from "./pg-errors.ts";
import { ReplicationStream } from "./replication-stream.ts";
import { WalBuffer } from "./wal-buffer.ts";
import { missingPublicationProblem } from "./slot-setup.ts";

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

test("pgoutput's missing publication is told by SQLSTATE 42704 and the publication's name, whatever lc_messages", () => {
  assert.ok(isPublicationDropped(pgError("42704", 'publication "sluice_pub" does not exist'), "sluice_pub"));
  assert.ok(isPublicationDropped(pgError("42704", "Publikation »sluice_pub« existiert nicht"), "sluice_pub"), "German");
  assert.ok(isPublicationDropped(pgError("42704", "la publication « sluice_pub » n'existe pas"), "sluice_pub"), "French");
  assert.ok(!isPublicationDropped(pgError("42704", 'publication "other" does not exist'), "sluice_pub"), "another publication");
  assert.ok(!isPublicationDropped(pgError("XX000", 'publication "sluice_pub" does not exist'), "sluice_pub"), "another SQLSTATE");
  assert.ok(!isPublicationDropped(new Error('publication "sluice_pub" does not exist'), "sluice_pub"), "no SQLSTATE");
  // The slot missing at START_REPLICATION, as PostgreSQL 15 answers it, where slot and publication share the default name.
  const slotMissing = Object.assign(pgError("42704", 'replication slot "sluice_shop" does not exist'), { routine: "ReplicationSlotAcquire", file: "slot.c" });
  assert.ok(!isPublicationDropped(slotMissing, "sluice_shop"), "a missing slot of the same name");
  assert.ok(isPublicationDropped(Object.assign(pgError("42704", 'publication "sluice_shop" does not exist'), { routine: "GetPublicationByName" }), "sluice_shop"));
});

test("the look's missing publication is PG_PUBLICATION_DROPPED: permanent with the steps by hand, retriable when the source renews (when-needed)", () => {
  const names = { slot: "sluice_slot", publication: "sluice_pub" };
  const permanent = publicationDroppedError(new Error("not found"), names, { source: "pg" }, false, "look");
  assert.equal(permanent.code, "PG_PUBLICATION_DROPPED");
  assert.equal(permanent.retriable, false);
  assert.match(permanent.message, /publication "sluice_pub" is missing .*PostgreSQL 18/);
  assert.match(permanent.message, /pg_drop_replication_slot\('sluice_slot'\)/);
  const renewing = publicationDroppedError(new Error("not found"), names, { source: "pg" }, true, "look");
  assert.equal(renewing.retriable, true);
  assert.match(renewing.message, /Taking a new snapshot on a new slot/);
});

for (const renews of [false, true]) {
  test(`a stream told its publication is missing fails with PG_PUBLICATION_DROPPED (${renews ? "when-needed: retriable" : "permanent"}), as for pgoutput's error`, async () => {
    const buffer = new WalBuffer(1 << 20);
    let asked = 0;
    const stream = new ReplicationStream({
      client: {},
      slot: "sluice_slot",
      publication: "sluice_pub",
      startLsn: 0n,
      flushedLsn: 0n,
      buffer,
      statusIntervalMs: 1000,
      logger: pino({ level: "silent" }),
      context: { source: "pg" },
      publicationDropped: () => {
        asked++;
        return renews;
      },
    });
    stream.publicationMissing();
    const failure = buffer.failed;
    assert.ok(failure instanceof SluiceError);
    assert.equal(failure.code, "PG_PUBLICATION_DROPPED");
    assert.equal(failure.retriable, renews);
    assert.equal(asked, 1, "the source is asked whether it renews (it notes the broken slot)");
    stream.publicationMissing();
    assert.equal(asked, 1, "once: the stream is stopping");
    await stream.stop();
  });
}

test("a publication missing at a start that resumes a checkpoint is taken for dropped while stopped from PostgreSQL 18 on (its pgoutput would skip the changes made meanwhile); up to 17 the stream itself fails", () => {
  const names = { slot: "sluice_shop", publication: "sluice_shop_pub" };
  const problem = missingPublicationProblem(180001, true, false, names);
  assert.match(problem ?? "", /publication "sluice_shop_pub" is missing while slot "sluice_shop" has changes to stream from the checkpoint: it was dropped while Sluice was stopped, and PostgreSQL 18 would leave/);
  assert.equal(missingPublicationProblem(170005, true, false, names), null, "PostgreSQL 17 fails the stream at the first such change");
  assert.equal(missingPublicationProblem(150010, true, false, names), null);
  assert.equal(missingPublicationProblem(180001, false, false, names), null, "a first start creates it");
  assert.equal(missingPublicationProblem(180001, true, true, names), null);
});
