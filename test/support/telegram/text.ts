/**
 * Message text as Telegram checks it: the parse mode decides the visible text and its entities,
 * which must be non-empty (except for drafts) and within the length limit.
 */
import { parseHtml } from "./html.ts"
import { badRequest, type Params } from "./protocol.ts"
import type { FakeEntity, FormattedText } from "./types.ts"

/** Telegram's limit for a message text after entity parsing, in UTF-16 code units. */
export const MAX_MESSAGE_LENGTH = 4096

interface MessageContent extends FormattedText {
  readonly raw: string
  readonly html: string | undefined
  readonly parse_mode: string | undefined
}

export function formatContent(p: Params, opts: { readonly allowEmpty: boolean }): MessageContent {
  const raw = typeof p["text"] === "string" ? p["text"] : p["text"] === undefined ? "" : String(p["text"])
  const parseMode = typeof p["parse_mode"] === "string" && p["parse_mode"] !== "" ? p["parse_mode"] : undefined
  const formatted = formatText(raw, parseMode, p["entities"])
  if (!opts.allowEmpty && formatted.text.trim() === "") throw badRequest("message text is empty")
  if (formatted.text.length > MAX_MESSAGE_LENGTH) throw badRequest("message is too long")
  return { ...formatted, raw, html: parseMode === "HTML" ? raw : undefined, parse_mode: parseMode }
}

function formatText(raw: string, parseMode: string | undefined, entities: unknown): FormattedText {
  switch (parseMode) {
    case undefined:
      return { text: raw, entities: Array.isArray(entities) ? (entities as Array<FakeEntity>) : [] }
    case "HTML":
      return parseHtml(raw)
    case "Markdown":
      // Legacy Markdown is not interpreted: the text is stored verbatim.
      return { text: raw, entities: [] }
    default:
      // MarkdownV2 included: the product only sends HTML or plain text.
      throw badRequest("unsupported parse_mode")
  }
}
