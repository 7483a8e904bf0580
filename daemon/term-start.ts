/**
 * What a capture term does before it captures, in the order its guarantees need: the former leader
 * is fenced (Kafka's InitProducerId: its open transaction aborted, its next one refused) before
 * anything is read or a replication slot is taken from it. What neither reads the log nor touches a
 * slot overlaps the fencing: the sources' catalog reads (Source.prepare) and the slot takeover's
 * connections (made when its caller began it). After the fencing, the schema registry is read from
 * its journal while the slots are taken: neither needs the other.
 */

/** A slot takeover begun (its connections being made): take() frees the slots, close() ends the connections. */
export interface BegunTakeover {
  take(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface TermSteps<R> {
  readonly takeover: BegunTakeover;
  /** Makes the term's sources and starts their preparation (reading only). */
  prepareSources(): Promise<void>;
  /** Fences the former leader. */
  fence(): Promise<void>;
  /** The registry as its journal holds it after the fencing. */
  readRegistry(): Promise<R>;
}

/**
 * Runs the steps; resolves once the slots are taken, with the registry being read (it rejects
 * there when the read fails). The takeover's connections are closed however it ends.
 */
export async function startTerm<R>(steps: TermSteps<R>, signal: AbortSignal): Promise<{ registry: Promise<R> }> {
  try {
    await steps.prepareSources();
    await steps.fence();
    const registry = steps.readRegistry();
    registry.catch(() => undefined);
    await steps.takeover.take(signal);
    return { registry };
  } finally {
    await steps.takeover.close();
  }
}
