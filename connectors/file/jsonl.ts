// jsonl-file destination: one JSON line per export, appended to a file under the file app's
// directory and fsynced once per batch before the batch is acknowledged.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Type, type Static } from "@sinclair/typebox";
import type { DeliverableExport, DestinationComponent, DestinationConnector, ExportResult } from "../types.js";
import type { FileAppOptions } from "./app.js";

export const JsonlFileOptions = Type.Object(
  { path: Type.String({ minLength: 1, description: "File (relative to the file app's directory) one export per line is appended to." }) },
  { additionalProperties: false },
);
type JsonlFileOptions = Static<typeof JsonlFileOptions>;

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

export const jsonlFileDestination: DestinationComponent = {
  type: "jsonl-file",
  appType: "file",
  options: JsonlFileOptions,
  metrics: [],
  create(destination, app) {
    return new JsonlFileDestination(destination.id, resolve((app.options as FileAppOptions).directory, (destination.options as JsonlFileOptions).path));
  },
};
