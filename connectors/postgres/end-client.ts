/**
 * Ends a pg connection without waiting on a server that does not answer. pg's end() sends
 * Terminate and waits for the server to close the socket, which a paused server, or one behind a
 * network that drops packets, never does (TCP keepalives give up after hours): after a grace its
 * socket is destroyed.
 */
import type pg from "pg";

const GRACE_MS = 5_000;

export async function endClient(client: pg.Client, graceMs = GRACE_MS): Promise<void> {
  const ending = client.end().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), graceMs);
    timer.unref();
  });
  try {
    if ((await Promise.race([ending, late])) !== "late") return;
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    await ending;
  } finally {
    clearTimeout(timer);
  }
}
