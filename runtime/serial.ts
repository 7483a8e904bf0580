/** Runs work one piece at a time, in the order it was given: each starts when the one before it has settled. */
export class Serial {
  private last: Promise<void> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.last.then(work);
    this.last = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
