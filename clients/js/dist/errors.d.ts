/**
 * The one error type of the SDK.
 *
 * @module
 */
/**
 * A request or a socket send that did not succeed.
 *
 * `status` is the HTTP status (e.g. 400, 401, 404, 409, 429, 503) and `code`
 * the server's stable snake_case reason from its `{"code","message"}` body
 * (`invalid_content`, `chat_not_found`, `idempotency_conflict`, …). Failures
 * that never got an HTTP answer use status `0` and an SDK code:
 * `network_error` (the server could not be reached), `timeout` (a socket send
 * got no answer in time), `closed` (the connection was closed while a send
 * was pending), `invalid_response` (the server's answer was not the JSON
 * expected). An `error` frame answering a socket send keeps the server's
 * `code` with status `0`.
 */
export declare class ApiError extends Error {
    /** HTTP status, or 0 when there was no HTTP answer. */
    readonly status: number;
    /** Stable snake_case reason. */
    readonly code: string;
    /** The server's `X-Request-Id` of the failed request, when there was one. */
    readonly requestId: string | null;
    /** Seconds to wait before retrying (`Retry-After` of a 429 or 503), when given. */
    readonly retryAfter: number | null;
    /** Makes an error; `message` is the human text. */
    constructor(status: number, code: string, message: string, extra?: {
        requestId?: string | null;
        retryAfter?: number | null;
        cause?: unknown;
    });
}
/** Reads `{"code","message"}` (or `{"error":{"code","message"}}`) out of an error body. */
export declare function errorBody(data: unknown): {
    code: string;
    message: string;
} | null;
