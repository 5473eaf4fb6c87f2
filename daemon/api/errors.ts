// Errors the HTTP API answers with: always `{error: {code, message}}`, the code stable (a client may
// branch on it), the message saying what is wrong in words an operator can act on.
import { Type } from "@sinclair/typebox";

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String({ description: "Stable code, e.g. NOT_FOUND, BAD_REQUEST, UNAUTHORIZED." }), message: Type.String() }) },
  { description: "What went wrong.", $id: "Error" },
);

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (message: string, code = "BAD_REQUEST") => new ApiError(400, code, message);
export const notFound = (message: string, code = "NOT_FOUND") => new ApiError(404, code, message);
export const conflict = (message: string, code = "CONFLICT") => new ApiError(409, code, message);
export const unavailable = (message: string) => new ApiError(503, "UNAVAILABLE", message);

/** Why the daemon has no config generation to answer from: before the first, between two, or at the end. */
export const STARTING = "the daemon is starting; try again in a moment";
export const RELOADING = "the daemon is reloading its config; try again in a moment";
export const STOPPING = "the daemon is stopping (drain): it answers no more requests that need its config";

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}
