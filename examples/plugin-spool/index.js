// An example grouparoo-stream plugin, written as a package would ship it (plain JavaScript, its options
// as plain JSON Schema), with one component of each kind:
// - app `spool`: a directory shared by the source and the destination;
// - source `spool-inbox`: change files (`*.ndjson`, one `{"op", "key", "row"}` per line) dropped into
//   `<directory>/<inbox>` are read in name order; a file is renamed to `.done` only once the daemon
//   reports its last line durable, so a crash re-reads it and nothing is lost;
// - destination `spool-outbox`: each delivered batch is written to `<directory>/<outbox>` as one file,
//   atomically (a temporary file, fsynced, then renamed).
// Run it with `grouparoo-stream run --plugin ./examples/plugin-spool ...` (or its package name once
// installed).
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Observable, share } from "rxjs";

const OPS = new Set(["insert", "update", "delete", "snapshot"]);

/** The changes of the spool-inbox sources of one app, read from their inbox directories. */
class SpoolInbox {
  constructor(app, sources, context) {
    this.appId = app.id;
    this.directory = app.options.directory;
    this.sources = sources;
    this.logger = context.logger;
    this.positions = context.positions;
    this.paused = false;
    this.stopped = false;
    this.connected = false;
    /** stream → file → number of lines, for the files read and not yet acknowledged whole. */
    this.open = new Map();
    this.changes$ = new Observable((subscriber) => {
      this.subscriber = subscriber;
      this.timer = setInterval(() => this.poll(), 200);
      this.poll();
      return () => void this.stop();
    }).pipe(share());
  }

  changes() {
    return this.changes$;
  }

  stream(source) {
    return `spool:${this.appId}:${source.id}`;
  }

  inbox(source) {
    return join(this.directory, source.options.inbox);
  }

  poll() {
    if (this.paused || this.stopped) return;
    for (const source of this.sources) {
      const dir = this.inbox(source);
      mkdirSync(dir, { recursive: true });
      this.connected = true;
      const stream = this.stream(source);
      const open = this.open.get(stream) ?? new Map();
      this.open.set(stream, open);
      const durable = this.positions.get(stream) ? JSON.parse(this.positions.get(stream)) : undefined;
      for (const file of readdirSync(dir).filter((f) => f.endsWith(".ndjson")).sort()) {
        if (open.has(file)) continue;
        const lines = readFileSync(join(dir, file), "utf8").split("\n").filter((l) => l.trim() !== "");
        open.set(file, lines.length);
        lines.forEach((text, i) => {
          const line = i + 1;
          // Lines a previous run made durable (it crashed before renaming the file) are not read again.
          if (durable && durable.file === file && line <= durable.line) return;
          const position = { stream, position: JSON.stringify({ file, line }) };
          let event;
          try {
            event = JSON.parse(text);
          } catch {
            event = undefined;
          }
          if (!event || !OPS.has(event.op) || typeof event.key !== "string") {
            const deadLetter = { reason: `${file} line ${line} is not {"op", "key", "row"}`, payload: { file, line, text } };
            this.subscriber?.next({ sourceId: source.id, op: "marker", key: "", before: null, after: null, position, commitTime: Date.now(), deadLetter });
            return;
          }
          const after = event.op === "delete" ? null : (event.row ?? {});
          this.subscriber?.next({ sourceId: source.id, op: event.op, key: event.key, before: null, after, position, commitTime: Date.now() });
        });
        if (lines.length === 0) this.finish(source, file);
      }
    }
  }

  finish(source, file) {
    const path = join(this.inbox(source), file);
    if (existsSync(path)) renameSync(path, `${path}.done`);
    this.open.get(this.stream(source))?.delete(file);
  }

  async acknowledge(positions) {
    for (const source of this.sources) {
      const position = positions.get(this.stream(source));
      if (!position) continue;
      const { file, line } = JSON.parse(position);
      const open = this.open.get(this.stream(source));
      // Files before this one in name order were read whole before it: all of their lines are durable.
      for (const [other, lines] of [...(open ?? new Map())]) {
        if (other < file || (other === file && line >= lines)) this.finish(source, other);
      }
    }
  }

  pause() {
    this.paused = true;
  }

  resume() {
    this.paused = false;
  }

  ready() {
    return this.connected && !this.stopped;
  }

  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.subscriber?.complete();
  }
}

/** Writes each delivered batch as one file, atomically. */
class SpoolOutbox {
  constructor(destination, app) {
    this.destinationId = destination.id;
    this.dir = join(app.options.directory, destination.options.outbox);
    mkdirSync(this.dir, { recursive: true });
  }

  async deliver(batch) {
    const name = `${String(Date.now()).padStart(15, "0")}-${String(batch[0]?.seq ?? 0).padStart(10, "0")}.ndjson`;
    const temporary = join(this.dir, `.${name}.tmp`);
    const fd = openSync(temporary, "w");
    try {
      writeSync(fd, batch.map((e) => `${JSON.stringify(e)}\n`).join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, join(this.dir, name));
    return batch.map((e) => ({ seq: e.seq, status: "ok" }));
  }

  ready() {
    return true;
  }

  async stop() {}
}

const directoryOption = (description) => ({ type: "string", minLength: 1, description });

export default {
  name: "grouparoo-stream-plugin-spool",
  apps: [
    {
      type: "spool",
      description: "A spool directory.",
      options: { type: "object", properties: { directory: directoryOption("The spool directory.") }, required: ["directory"], additionalProperties: false },
    },
  ],
  sources: [
    {
      type: "spool-inbox",
      appType: "spool",
      options: { type: "object", properties: { inbox: directoryOption("Subdirectory change files are dropped into.") }, required: ["inbox"], additionalProperties: false },
      metrics: [],
      create: (app, sources, context) => new SpoolInbox(app, sources, context),
    },
  ],
  destinations: [
    {
      type: "spool-outbox",
      appType: "spool",
      options: { type: "object", properties: { outbox: directoryOption("Subdirectory delivered batches are written to.") }, required: ["outbox"], additionalProperties: false },
      metrics: [],
      check(destination) {
        return destination.options.outbox.includes("..") ? [{ field: ["options", "outbox"], message: "must stay inside the spool directory" }] : [];
      },
      create: (destination, app) => new SpoolOutbox(destination, app),
    },
  ],
};
