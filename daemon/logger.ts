import { pino } from "pino";
import type { DestinationStream, Logger } from "pino";

export type { Logger };

/** JSON lines on standard output (or the given stream), one logger per process with child loggers per component. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "sluice" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? stdoutDestination(),
  );
}

export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}
