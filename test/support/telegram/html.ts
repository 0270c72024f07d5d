/**
 * Telegram's HTML parse mode: visible text and entities from the bot's markup, with the errors
 * Telegram answers for markup it refuses.
 */
import { badRequest } from "./protocol.ts"
import type { FakeEntity, FormattedText } from "./types.ts"

const HTML_TAG_ENTITY: Readonly<Record<string, string>> = {
  b: "bold",
  strong: "bold",
  i: "italic",
  em: "italic",
  u: "underline",
  ins: "underline",
  s: "strikethrough",
  strike: "strikethrough",
  del: "strikethrough",
  code: "code",
  pre: "pre",
  a: "text_link",
  blockquote: "blockquote",
  "tg-spoiler": "spoiler",
  span: "spoiler"
}

const NAMED_HTML_ENTITIES: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"' }
const HTML_ENTITY = /&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));/y

interface OpenTag {
  readonly name: string
  readonly attrs: ReadonlyMap<string, string>
  readonly offset: number
  language?: string
}

const entityError = (what: string) => badRequest(`can't parse entities: ${what}`)

/** Telegram reports positions as byte offsets in the UTF-8 encoded text. */
const byteOffset = (input: string, index: number) => Buffer.byteLength(input.slice(0, index), "utf8")

/** Reads `&lt;`-style and numeric entities at `index`; undefined when there is none. */
function readHtmlEntity(input: string, index: number): { readonly char: string; readonly length: number } | undefined {
  HTML_ENTITY.lastIndex = index
  const match = HTML_ENTITY.exec(input)
  if (match === null) return undefined
  const [whole, named, decimal, hex] = match
  if (named !== undefined) return { char: NAMED_HTML_ENTITIES[named] ?? "", length: whole.length }
  const code = decimal !== undefined ? Number.parseInt(decimal, 10) : Number.parseInt(hex ?? "", 16)
  if (!(code > 0 && code <= 0x10ffff)) return undefined
  return { char: String.fromCodePoint(code), length: whole.length }
}

/** Telegram HTML: only its tag set, properly nested and closed; `<` and `&` must be escaped. */
export function parseHtml(input: string): FormattedText {
  let text = ""
  const entities: Array<FakeEntity> = []
  const open: Array<OpenTag> = []
  let i = 0
  while (i < input.length) {
    const c = input[i]
    if (c === "&") {
      const entity = readHtmlEntity(input, i)
      if (entity === undefined) {
        throw entityError(`Character '&' at byte offset ${byteOffset(input, i)} must be escaped as "&amp;"`)
      }
      text += entity.char
      i += entity.length
    } else if (c !== "<") {
      text += c
      i++
    } else if (input[i + 1] === "/") {
      const end = input.indexOf(">", i)
      if (end === -1) throw entityError(`Unclosed end tag at byte offset ${byteOffset(input, i)}`)
      const name = input.slice(i + 2, end).trim().toLowerCase()
      const tag = open.pop()
      if (tag === undefined) throw entityError(`Unexpected end tag at byte offset ${byteOffset(input, i)}`)
      if (name !== tag.name) {
        throw entityError(
          `Unmatched end tag at byte offset ${byteOffset(input, i)}, expected "</${tag.name}>", found "</${name}>"`
        )
      }
      closeHtmlTag(tag, open.at(-1), text.length, entities)
      i = end + 1
    } else {
      const tag = readStartTag(input, i)
      open.push({ name: tag.name, attrs: tag.attrs, offset: text.length })
      i = tag.end
    }
  }
  const unclosed = open.at(-1)
  if (unclosed !== undefined) throw entityError(`Can't find end tag corresponding to start tag "${unclosed.name}"`)
  return { text, entities: entities.sort((a, b) => a.offset - b.offset || b.length - a.length) }
}

function readStartTag(input: string, start: number): { name: string; attrs: Map<string, string>; end: number } {
  const at = () => `at byte offset ${byteOffset(input, start)}`
  const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch)
  let i = start + 1
  while (i < input.length && !isSpace(input[i]) && input[i] !== ">") i++
  const name = input.slice(start + 1, i).toLowerCase()
  if (i >= input.length) throw entityError(`Unclosed start tag ${at()}`)
  if (!(name in HTML_TAG_ENTITY)) throw entityError(`Unsupported start tag "${name}" ${at()}`)

  const attrs = new Map<string, string>()
  for (;;) {
    while (isSpace(input[i])) i++
    if (i >= input.length) throw entityError(`Unclosed start tag ${at()}`)
    if (input[i] === ">") {
      i++
      break
    }
    const nameStart = i
    while (i < input.length && !isSpace(input[i]) && input[i] !== "=" && input[i] !== ">") i++
    const attrName = input.slice(nameStart, i).toLowerCase()
    if (attrName === "") throw entityError(`Empty attribute name in the tag "${name}" ${at()}`)
    while (isSpace(input[i])) i++
    let value = ""
    if (input[i] === "=") {
      i++
      while (isSpace(input[i])) i++
      const quote = input[i]
      if (quote === '"' || quote === "'") {
        const close = input.indexOf(quote, i + 1)
        if (close === -1) throw entityError(`Unclosed start tag ${at()}`)
        value = input.slice(i + 1, close)
        i = close + 1
      } else {
        const valueStart = i
        while (i < input.length && !isSpace(input[i]) && input[i] !== ">") i++
        value = input.slice(valueStart, i)
      }
    }
    attrs.set(attrName, decodeAttribute(value))
  }
  if (name === "span" && attrs.get("class") !== "tg-spoiler") {
    throw entityError(`Tag "span" must have class "tg-spoiler" ${at()}`)
  }
  return { name, attrs, end: i }
}

/** Attribute values (e.g. hrefs) are decoded leniently: an unknown `&` stays literal. */
function decodeAttribute(value: string): string {
  let out = ""
  for (let i = 0; i < value.length; ) {
    const entity = value[i] === "&" ? readHtmlEntity(value, i) : undefined
    out += entity?.char ?? value[i]
    i += entity?.length ?? 1
  }
  return out
}

function closeHtmlTag(tag: OpenTag, parent: OpenTag | undefined, end: number, entities: Array<FakeEntity>): void {
  const offset = tag.offset
  const length = end - offset
  const language = /^language-(.+)$/.exec(tag.attrs.get("class") ?? "")?.[1]
  if (tag.name === "code" && parent?.name === "pre" && language !== undefined) {
    // <pre><code class="language-x"> is a single pre entity with a language.
    parent.language = language
    return
  }
  if (length === 0) return
  switch (tag.name) {
    case "a": {
      const href = tag.attrs.get("href")
      if (href !== undefined && href !== "") entities.push({ type: "text_link", offset, length, url: href })
      return
    }
    case "pre":
      entities.push({ type: "pre", offset, length, ...(tag.language === undefined ? {} : { language: tag.language }) })
      return
    case "blockquote":
      entities.push({ type: tag.attrs.has("expandable") ? "expandable_blockquote" : "blockquote", offset, length })
      return
    default:
      entities.push({ type: HTML_TAG_ENTITY[tag.name] ?? tag.name, offset, length })
  }
}
