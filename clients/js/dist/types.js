/**
 * Wire types of the missive API: the JSON bodies of the REST endpoints and
 * the WebSocket frames, as the server's OpenAPI document (`/openapi.json`)
 * describes them. Field names are camelCase, times RFC 3339 UTC strings with
 * milliseconds, ids UUID strings. Every field is always present in what the
 * server sends; an absent optional value is `null`.
 *
 * @module
 */
export {};
