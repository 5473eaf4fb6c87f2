// The file app: a directory its file destinations write into.
import { Type, type Static } from "@sinclair/typebox";
import type { AppComponent } from "../types.js";

export const FileAppOptions = Type.Object(
  { directory: Type.String({ minLength: 1, description: "Directory the file destinations write into." }) },
  { additionalProperties: false },
);
export type FileAppOptions = Static<typeof FileAppOptions>;

export const fileApp: AppComponent = { type: "file", options: FileAppOptions, identity: (app) => ({ directory: (app.options as FileAppOptions).directory }) };
