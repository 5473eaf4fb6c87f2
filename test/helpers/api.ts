// Calls a running daemon's HTTP API the way a client does, and keeps every answer, so a test can
// check afterwards that none of them ever carried a key's secret.
export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface ApiCallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Sent as HTTP Basic (user "operator", the key as the password), as a browser does. */
  basic?: string;
  /** The Authorization header as it is (a scheme the daemon does not take, say). */
  authorization?: string;
  /** A value is sent as JSON; a string as it is (for bad JSON). */
  body?: unknown;
  contentType?: string;
}

export class ApiClient {
  /** Every answer's text, in order. */
  readonly answers: string[] = [];

  constructor(readonly http: string) {}

  async call<T = Record<string, unknown>>(method: string, path: string, options: ApiCallOptions = {}): Promise<ApiAnswer<T>> {
    const headers: Record<string, string> = {};
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    if (options.basic !== undefined) headers.authorization = `Basic ${Buffer.from(`operator:${options.basic}`).toString("base64")}`;
    if (options.authorization !== undefined) headers.authorization = options.authorization;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] = options.contentType ?? "application/json";
    }
    const response = await fetch(`http://${this.http}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    this.answers.push(`${response.status} ${[...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}\n${text}`);
    let parsed: unknown = text;
    if ((response.headers.get("content-type") ?? "").includes("json")) parsed = JSON.parse(text);
    return { status: response.status, body: parsed as T, text, headers: response.headers };
  }

  get<T = Record<string, unknown>>(path: string, key?: string): Promise<ApiAnswer<T>> {
    return this.call<T>("GET", path, key === undefined ? {} : { key });
  }
}
