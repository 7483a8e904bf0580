/**
 * Tells a periodic check of a connection's silence that it runs far later than its period: this process
 * did not run meanwhile (SIGSTOP, a frozen container or VM, a long pause of its event loop). What the
 * server sent meanwhile waits unread in the socket, read only after the check (after SIGCONT the
 * interrupted wait for I/O returns with its timeout spent and the overdue timers run first): the silence
 * the check would measure is this process's own, not the server's.
 */
export class StallDetector {
  private readonly periodMs: number;
  private checkedAt: number;

  constructor(periodMs: number, now: number = Date.now()) {
    this.periodMs = periodMs;
    this.checkedAt = now;
  }

  /**
   * Notes that the check runs now; gives how long this process did not run when the check comes more
   * than two periods (and at least 1 s) late, null otherwise.
   */
  stalledMs(now: number = Date.now()): number | null {
    const lateMs = now - this.checkedAt - this.periodMs;
    this.checkedAt = now;
    return lateMs > Math.max(2 * this.periodMs, 1_000) ? lateMs + this.periodMs : null;
  }
}
