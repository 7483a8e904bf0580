// Preloaded into every test file (test/run's --import). Once a file's tests are done, a file that still holds an
// open handle is ended after a grace period long enough for its own cleanup hooks, and the handles are named on
// stderr. This replaces `--test-force-exit`, which ended a child before its queued test events reached the runner,
// so tests went unreported (neither passed nor failed).
import { after } from "node:test";

const cleanupGraceMs = Number(process.env.SLUICE_TEST_EXIT_GRACE_MS ?? 420_000);

after(() => {
  setTimeout(() => {
    process.stderr.write(
      `test file still running ${cleanupGraceMs} ms after its tests ended; open handles: ${process.getActiveResourcesInfo().join(", ")}\n`,
    );
    process.exit();
  }, cleanupGraceMs).unref();
});
