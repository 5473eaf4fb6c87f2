// jsonl-file destination: one JSON line per export, appended to a file under the file app's
// directory and fsynced once per batch before the batch is acknowledged.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { DeliverableExport, DestinationConnector, DestinationPlugin, ExportResult } from "../types.js";

export class JsonlFileDestination implements DestinationConnector {
  constructor(
    readonly destinationId: string,
    private readonly path: string,
  ) {
    mkdirSync(dirname(path), { recursive: true });
  }

  async deliver(batch: readonly DeliverableExport[]): Promise<ExportResult[]> {
    const text = batch.map((e) => `${JSON.stringify(e)}\n`).join("");
    const fd = openSync(this.path, "a");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return batch.map((e) => ({ seq: e.seq, status: "ok" }));
  }

  ready(): boolean {
    return true;
  }

  async stop(): Promise<void> {}
}

export const jsonlFilePlugin: DestinationPlugin = {
  destinationType: "jsonl-file",
  create(destination, app) {
    if (destination.type !== "jsonl-file" || app.type !== "file") throw new Error("jsonl-file needs a file app");
    return new JsonlFileDestination(destination.id, resolve(app.options.directory, destination.options.path));
  },
};
