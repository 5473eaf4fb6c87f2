// A source's paused state, shared by the source connectors: the core pauses and resumes a source
// (backpressure), and the source's reader waits at the gate while it is paused.

export class PauseGate {
  private paused = false;
  private waiters: (() => void)[] = [];

  get isPaused(): boolean {
    return this.paused;
  }

  /** Pauses; false if it already was paused. */
  pause(): boolean {
    if (this.paused) return false;
    this.paused = true;
    return true;
  }

  /** Resumes and wakes the waiting reader; false if it was not paused. */
  resume(): boolean {
    const was = this.paused;
    this.paused = false;
    this.wake();
    return was;
  }

  /** Wakes the waiting reader without resuming (to see that the source stopped). */
  wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits while paused and not stopped; with `tick`, runs it every `ms` (and when woken) meanwhile. */
  async wait(stopped: () => boolean, tick?: { ms: number; run: () => Promise<unknown> }): Promise<void> {
    while (this.paused && !stopped()) {
      const woken = new Promise<void>((resolve) => this.waiters.push(resolve));
      if (!tick) {
        await woken;
        continue;
      }
      await Promise.race([woken, new Promise((resolve) => setTimeout(resolve, tick.ms))]);
      await tick.run();
    }
  }
}
