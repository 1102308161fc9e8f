/**
 * Requests that queue while a batch is under way go together in the next one: answers waiting
 * behind a sync run reach the kernel in one transaction. Each request learns its batch's outcome.
 */
export class Batcher<T> {
  private queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private draining = false;

  /** `run` gets every item queued when it is called (it takes them itself, so late arrivals join). */
  constructor(private readonly run: (take: () => T[]) => Promise<void>) {}

  push(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        let batch: typeof this.queue = [];
        const take = (): T[] => {
          batch = this.queue.splice(0);
          return batch.map((b) => b.item);
        };
        try {
          await this.run(take);
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
