/**
 * Reads a row by the new key of a key-changing update (fillMovedToast). The commit can be decoded a
 * moment before its transaction is visible to other sessions, so a row not found is looked for again
 * briefly, but only while the transaction is not visible yet: once it is, a row not found was deleted
 * or moved again since (later events say so), and looking again cannot find it. A catch-up replaying
 * such changes (a standby taking over, a restart) waited ~0.45 s for each without this.
 */
export interface MovedRowLookup<Row> {
  /** The row by its new key, as the server sees it now. */
  find(): Promise<Row | undefined>;
  /** Whether the update's transaction is visible to other sessions now (false when it cannot be told). */
  visible(): Promise<boolean>;
  sleep(ms: number): Promise<void>;
}

const ATTEMPTS = 10;

export async function readMovedRow<Row>(lookup: MovedRowLookup<Row>): Promise<Row | undefined> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) await lookup.sleep(10 * attempt);
    const row = await lookup.find();
    if (row !== undefined) return row;
    // Visible now: a read after this sees the transaction's rows, so it is the last one needed (the one before may have come just before it was visible).
    if (await lookup.visible()) return lookup.find();
  }
  return undefined;
}

/**
 * Whether a transaction, by its 32-bit xid from pgoutput, is visible in the statement's snapshot: the xid
 * is widened to the epoch of the snapshot's xmax (an xid is within 2^31 of it either way). `visible` is
 * "true" or "false" (text: the catalog client parses no types).
 */
export const TRANSACTION_VISIBLE_SQL =
  "SELECT txid_visible_in_snapshot(CASE WHEN d < 2147483648 THEN x - d ELSE x + (4294967296 - d) END, s)::text AS visible " +
  "FROM (SELECT s, x, ((x % 4294967296) - $1::bigint + 4294967296) % 4294967296 AS d " +
  "FROM (SELECT s, txid_snapshot_xmax(s) AS x FROM (SELECT txid_current_snapshot() AS s) c) m) q";
