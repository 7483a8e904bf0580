/**
 * Acknowledges only the highest position below which every issued batch was acknowledged, so an
 * out-of-order ack() never confirms a batch that is not yet durable.
 */
export class AckTracker {
  private pending: { lsn: bigint; acked: boolean }[] = [];
  private generation = 0;
  private readonly onAdvance: (lsn: bigint) => void;

  constructor(onAdvance: (lsn: bigint) => void) {
    this.onAdvance = onAdvance;
  }

  /** Registers a batch whose acknowledgement allows flushing up to `lsn`; returns its ack function. */
  issue(lsn: bigint): () => void {
    const entry = { lsn, acked: false };
    const generation = this.generation;
    this.pending.push(entry);
    return () => {
      if (generation !== this.generation || entry.acked) return;
      entry.acked = true;
      let advanced: bigint | null = null;
      while (this.pending[0]?.acked === true) advanced = this.pending.shift()!.lsn;
      if (advanced !== null) this.onAdvance(advanced);
    };
  }

  /** Forgets batches of an earlier connection: after a reconnect they are read again from the checkpoint. */
  reset(): void {
    this.pending = [];
    this.generation++;
  }

  get outstanding(): number {
    return this.pending.length;
  }
}
