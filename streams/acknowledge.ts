// Acknowledgement (invariant 1): after a batch is durable, each stream's last position goes back to
// the source that owns that stream, and only to it. Ownership is learnt as changes pass: a source's
// changes are tagged on their way in.
import { tap, type MonoTypeOperatorFunction } from "rxjs";
import type { Change } from "../core/change.js";

export interface Acknowledger {
  acknowledge(positions: ReadonlyMap<string, string>): Promise<void>;
}

export class PositionRouter<S extends Acknowledger> {
  private readonly owners = new Map<string, S>();

  /** Notes that the streams of the changes passing belong to `source`. */
  ownedBy(source: S): MonoTypeOperatorFunction<Change> {
    return tap((change) => {
      const stream = change.position.stream;
      if (this.owners.get(stream) !== source) this.owners.set(stream, source);
    });
  }

  /** The streams seen so far and the source owning each. */
  streams(): ReadonlyMap<string, S> {
    return this.owners;
  }

  /** Hands each source the durable positions of its own streams. */
  route(positions: ReadonlyMap<string, string>, onError: (source: S, error: unknown) => void): void {
    const bySource = new Map<S, Map<string, string>>();
    for (const [stream, position] of positions) {
      const owner = this.owners.get(stream);
      if (!owner) continue;
      let own = bySource.get(owner);
      if (!own) bySource.set(owner, (own = new Map()));
      own.set(stream, position);
    }
    for (const [source, own] of bySource) source.acknowledge(own).catch((error: unknown) => onError(source, error));
  }
}
