/**
 * HTTP plumbing: Telegram's JSON answer envelope and reading a request's parameters.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type { ResponseParameters } from "grammy/types"
import type { Params } from "./protocol.ts"

/** Telegram's error envelope; `parameters` comes with 429s (retry_after) and migrated groups (migrate_to_chat_id). */
export function failure(code: number, description: string, parameters?: ResponseParameters) {
  return { ok: false, error_code: code, description, ...(parameters === undefined ? {} : { parameters }) }
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return
  const json = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) })
  res.end(json)
}

/** Parameters from the JSON or urlencoded body, merged over the query string. */
export async function readParams(req: IncomingMessage, url: URL): Promise<Params> {
  const params: Params = {}
  for (const [key, value] of url.searchParams) params[key] = parseFormValue(value)
  const chunks: Array<Buffer> = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  const body = Buffer.concat(chunks).toString("utf8")
  if (body.trim() === "") return params
  const contentType = req.headers["content-type"] ?? ""
  if (contentType.includes("application/x-www-form-urlencoded")) {
    for (const [key, value] of new URLSearchParams(body)) params[key] = parseFormValue(value)
    return params
  }
  if (contentType.includes("multipart/form-data")) throw new Error("multipart uploads are not supported by the fake")
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    throw new Error("can't parse JSON body")
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("JSON body must be an object")
  return { ...params, ...(parsed as Params) }
}

/** Form values are strings; Telegram accepts JSON-serialised objects and numbers in them. */
function parseFormValue(value: string): unknown {
  if (/^-?\d+$/.test(value)) return Number(value)
  if (value === "true" || value === "false") return value === "true"
  if (value.startsWith("{") || value.startsWith("[")) {
    try {
      return JSON.parse(value)
    } catch {
      return value
    }
  }
  return value
}
