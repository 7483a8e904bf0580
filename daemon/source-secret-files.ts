/**
 * The sources run on the daemon's main thread: a source's password_file that cannot be read again at a (re)connection
 * (config/secret-files.ts currentSecret) is warned, naming the source, the file and the errno (never a value), and
 * counted. Sink threads set their own listener (sink-worker.ts).
 */
import { reportUnreadableSecretFiles } from "../config/secret-files.ts";
import type { Logger } from "../runtime/logger.ts";
import { reportUnreadableKafkaSecret } from "./kafka-auth-report.ts";
import type { SluiceMetrics } from "./metrics.ts";

export function watchSourceSecretFiles(logger: Logger, metrics: SluiceMetrics): void {
  reportUnreadableSecretFiles((problem) => {
    // Kafka's clients run on this thread too (capture, the capture lease, the admin).
    if (reportUnreadableKafkaSecret(problem, logger, metrics)) return;
    const { name, key, file, code, reason } = problem;
    const source = name ?? "";
    logger.warn({ source, key: `${key}_file`, file, code }, `source ${source}: its ${key}_file ${file} cannot be read (${code}: ${reason}); connecting with the value read before`);
    metrics.sourceSecretFileUnreadable.inc({ source });
  });
}
