/**
 * Test support shared by every source's integration tests: unique names, a logger, reading batches
 * until a condition holds, and the error a connect fails with.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import type { Logger } from "pino";
import { recordTestName } from "../../test/services/test-names.ts";
import type { ChangeEvent, Source, SourceBatch } from "../contracts.ts";
import { SluiceError } from "../errors.ts";

/** A name no other run uses, recorded in the ledger of test names (test/services/test-names.ts) for the sweep. */
export function randomName(prefix: string): string {
  return recordTestName(`${prefix}_${randomBytes(5).toString("hex")}`);
}

export function testLogger(): Logger {
  return pino({ level: process.env["SLUICE_TEST_LOG"] ?? "silent" }, pino.destination(2));
}

export interface Collected<Batch extends SourceBatch = SourceBatch> {
  readonly events: ChangeEvent[];
  readonly batches: Batch[];
}

/** Reads (and acknowledges, unless told not to) batches until `done` holds for everything read so far. */
export async function readUntil<Batch extends SourceBatch>(
  source: { read(signal: AbortSignal): Promise<Batch> },
  done: (collected: Collected<Batch>) => boolean,
  options: { timeoutMs?: number; ack?: boolean; into?: Collected<Batch> } = {},
): Promise<Collected<Batch>> {
  const collected = options.into ?? { events: [], batches: [] };
  const signal = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  while (!done(collected)) {
    let batch: Batch;
    try {
      batch = await source.read(signal);
    } catch (error) {
      if (signal.aborted) throw new Error(`timed out after ${collected.events.length} events in ${collected.batches.length} batches`, { cause: error });
      throw error;
    }
    collected.batches.push(batch);
    collected.events.push(...batch.events);
    if (options.ack !== false) await batch.ack();
  }
  return collected;
}

/** The SluiceError the source's connect fails with (the test fails when it connects); the source is closed after. */
export async function connectError(source: Pick<Source, "connect" | "close">): Promise<SluiceError> {
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
  } catch (error) {
    assert.ok(error instanceof SluiceError, `a SluiceError, got ${String(error)}`);
    return error;
  } finally {
    await source.close();
  }
  assert.fail("connect succeeded");
}
