/**
 * LLM Markdown -> Telegram messages (parse_mode "HTML").
 *
 * The Markdown is parsed with `marked`'s lexer (CommonMark + GFM), and the token tree is flattened into
 * runs of text, each with the stack of tags around it. Splitting then works on the visible text alone,
 * which is what Telegram's 4096 limit counts, and each chunk re-opens the tags of its first run, so a code
 * block (or a bold span, or a quote) cut in two is closed in one message and reopened in the next.
 * Only the tags Telegram accepts are ever produced, and all text is escaped: raw HTML in the answer is
 * shown as text, and broken Markdown stays as the literal characters the lexer left it as.
 */
import { Lexer, type MarkedToken, type Token, type Tokens } from "marked"

/** Telegram's longest message text: 4096 UTF-16 units after entity parsing (Bot API, sendMessage). */
export const maxMessageLength = 4096

export interface TelegramChunk {
  readonly html: string
  readonly plain: string
}

/** A tag pair around a run of text. Marks are compared by identity: adjacent runs sharing one stay in the same
 * element (so a code block or a link is never cut into two); plain tags like bold are shared constants, so two
 * touching bold spans just merge, which looks the same. */
interface Mark {
  readonly open: string
  readonly close: string
}

interface Run {
  readonly text: string
  readonly marks: ReadonlyArray<Mark>
}

const escapeText = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

const escapeAttribute = (text: string): string => escapeText(text).replaceAll("\"", "&quot;")

const tag = (name: string, attributes = ""): Mark => ({ open: `<${name}${attributes}>`, close: `</${name}>` })

const BOLD = tag("b")
const ITALIC = tag("i")
const STRIKE = tag("s")
const CODE = tag("code")
const PRE = tag("pre")
const QUOTE = tag("blockquote")

// A fresh Mark per block, so two code blocks never merge, and the language survives a split.
const codeBlock = (language: string | undefined): Mark =>
  language
    ? { open: `<pre><code class="language-${escapeAttribute(language)}">`, close: "</code></pre>" }
    : tag("pre")

/**
 * The link as sent and the host it opens, or undefined when the bot must not send it as a link:
 * only absolute http(s) URLs with a host, re-serialised by the WHATWG parser (so a client that
 * reads `https://paypal.com\@evil.example` otherwise opens the same host we saw). `tg:` (user
 * mentions by id, `tg://user?id=`), `mailto:`, `javascript:`, `data:` and relative paths keep
 * just their text (issue 9: the LLM's Markdown is not trusted to choose where a tap leads).
 */
const safeLink = (href: string): { readonly href: string; readonly host: string } | undefined => {
  if (!/^https?:\/\//i.test(href.trim())) return undefined
  try {
    const url = new URL(href.trim())
    return url.hostname === "" ? undefined : { href: url.href, host: url.hostname }
  } catch {
    return undefined
  }
}

/** A host compared by its registrable form: ASCII (punycode), lower case, no "www.", no final dot. */
const bareHost = (host: string): string => {
  try {
    return new URL(`http://${host}`).hostname.replace(/^www\./, "").replace(/\.$/, "")
  } catch {
    return host.toLowerCase()
  }
}

/** The domains a link's visible text names ("paypal.com", "log in at https://paypal.com/x"), normalised (NFKC: full-width dots). */
const namedHosts = (text: string): Array<string> =>
  [...text.normalize("NFKC").matchAll(/(?:^|[^\p{L}\p{N}.@-])((?:[\p{L}\p{N}-]+\.)+\p{L}{2,})(?=$|[^\p{L}\p{N}-])/gu)]
    .map((match) => match[1]!)

// Markdown decodes entity references in text (not in code). marked already decodes numeric ones; the common
// named ones are done here (a Map, so "&constructor;" can't reach Object.prototype); any other stays literal.
const NAMED_ENTITIES: ReadonlyMap<string, string> = new Map([
  ["amp", "&"], ["lt", "<"], ["gt", ">"], ["quot", "\""], ["apos", "'"], ["nbsp", "\u00a0"]
])
const decodeEntities = (text: string): string =>
  text.replace(/&([a-z]+);/g, (whole, name: string) => NAMED_ENTITIES.get(name) ?? whole)

const joinRuns = (parts: ReadonlyArray<ReadonlyArray<Run>>, separator: Run): Array<Run> =>
  parts.filter((part) => part.length > 0).flatMap((part, i) => (i === 0 ? [...part] : [separator, ...part]))

const plainOf = (runs: ReadonlyArray<Run>): string => runs.map((run) => run.text).join("")

// No extensions are registered, so the lexer only emits MarkedToken; the cast lets `switch` narrow on `type`.
const inline = (tokens: ReadonlyArray<Token>, marks: ReadonlyArray<Mark>): Array<Run> =>
  tokens.flatMap((token) => inlineToken(token as MarkedToken, marks))

const inlineToken = (token: MarkedToken, marks: ReadonlyArray<Mark>): Array<Run> => {
  switch (token.type) {
    case "text":
      return token.tokens ? inline(token.tokens, marks) : [{ text: decodeEntities(token.text), marks }]
    case "escape":
      return [{ text: token.text, marks }]
    case "strong":
      return inline(token.tokens, [...marks, BOLD])
    case "em":
      return inline(token.tokens, [...marks, ITALIC])
    case "del":
      return inline(token.tokens, [...marks, STRIKE])
    case "codespan":
      return [{ text: token.text, marks: [...marks, CODE] }]
    case "br":
      return [{ text: "\n", marks }]
    case "link":
    case "image": {
      // An image can't be sent inline, so it becomes a link to it with its alt text.
      const link = safeLink(token.href)
      const inner = link !== undefined ? [...marks, tag("a", ` href="${escapeAttribute(link.href)}"`)] : marks
      const content = inline(token.tokens, inner)
      const shown = plainOf(content).trim() !== "" ? content : [{ text: token.href, marks: inner }]
      // Text that names another domain than the target ("[paypal.com](https://evil.example)")
      // gets the real one beside it, outside the link.
      const target = link === undefined ? undefined : bareHost(link.host)
      return target !== undefined && namedHosts(plainOf(shown)).some((named) => bareHost(named) !== target)
        ? [...shown, { text: ` (${target})`, marks }]
        : shown
    }
    case "html":
      // Raw HTML is never passed through: Telegram would reject most tags. Show it as the text it is.
      return [{ text: token.text.trimEnd(), marks }]
    default:
      return [{ text: token.raw, marks }]
  }
}

/** Blocks are separated by a blank line (a tight list item's by a line break); the separator carries the
 * enclosing tags only, so a quote's paragraphs stay in one blockquote while a heading's bold ends with it. */
const blocks = (tokens: ReadonlyArray<Token>, marks: ReadonlyArray<Mark>, separator = "\n\n"): Array<Run> =>
  joinRuns(tokens.map((token) => block(token as MarkedToken, marks)), { text: separator, marks })

const block = (token: MarkedToken, marks: ReadonlyArray<Mark>): Array<Run> => {
  switch (token.type) {
    case "space":
    case "def":
      return []
    case "paragraph":
      return inline(token.tokens, marks)
    case "heading":
      return inline(token.tokens, [...marks, BOLD])
    case "code":
      return token.text === "" ? [] : [{ text: token.text, marks: [...marks, codeBlock(token.lang)] }]
    case "blockquote":
      // Telegram can't nest quotes: an inner quote just continues the outer one.
      return blocks(token.tokens, marks.includes(QUOTE) ? marks : [...marks, QUOTE])
    case "list":
      return joinRuns(
        token.items.map((item, i) => {
          const number = (token.start === "" ? 1 : token.start) + i
          const checkbox = item.task ? (item.checked ? "☑ " : "☐ ") : ""
          return listItem(item, `${token.ordered ? `${number}.` : "•"} ${checkbox}`, marks)
        }),
        { text: token.loose ? "\n\n" : "\n", marks }
      )
    case "table":
      return [{ text: tableText(token), marks: [...marks, PRE] }]
    case "hr":
      return [{ text: "———", marks }]
    default:
      return inlineToken(token, marks)
  }
}

/** The marker goes before the first line; later lines are indented by its width, which nests sub-lists. */
const listItem = (item: Tokens.ListItem, marker: string, marks: ReadonlyArray<Mark>): Array<Run> => {
  const body = blocks(item.tokens.filter((t) => t.type !== "checkbox"), marks, item.loose ? "\n\n" : "\n")
  return [{ text: marker, marks }, ...indent(body, " ".repeat(marker.length))]
}

const indent = (runs: ReadonlyArray<Run>, pad: string): Array<Run> => {
  let atLineStart = false // the first line already has the marker
  return runs.map(({ text, marks }) => {
    let indented = ""
    for (const char of text) {
      // Blank lines stay empty, so a paragraph break is still "\n\n" for the splitter.
      if (atLineStart && char !== "\n") indented += pad
      indented += char
      atLineStart = char === "\n"
    }
    return { text: indented, marks }
  })
}

/** Telegram has no tables: lay one out as aligned monospace text. */
const tableText = (table: Tokens.Table): string => {
  const cell = (c: Tokens.TableCell): string => plainOf(inline(c.tokens, []))
  const header = table.header.map(cell)
  const rows = table.rows.map((row) => row.map(cell))
  const widths = header.map((text, i) => Math.max(text.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (row: ReadonlyArray<string>): string =>
    widths.map((width, i) => (row[i] ?? "").padEnd(width)).join(" | ").trimEnd()
  return [line(header), widths.map((width) => "-".repeat(width)).join("-+-"), ...rows.map(line)].join("\n")
}

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" })

/** Where to cut `text` so that text[start, end) has at most `limit` code units: at the last paragraph break,
 * else line break, else space, else inside a word but never inside a character. `next` skips the separator. */
const findBreak = (text: string, start: number, limit: number): { readonly end: number; readonly next: number } => {
  const max = start + limit
  if (text.length <= max) return { end: text.length, next: text.length }
  const paragraph = text.lastIndexOf("\n\n", max)
  if (paragraph > start) return { end: paragraph, next: paragraph + 2 }
  const line = text.lastIndexOf("\n", max)
  if (line > start) return { end: line, next: line + 1 }
  for (let i = max; i > start; i--) {
    if (text[i] === " " || text[i] === "\t") return { end: i, next: i + 1 }
  }
  // Cut before the grapheme straddling `max`, so an emoji (with its modifiers, ZWJ sequence or flag) stays
  // whole. A boundary depends only on what precedes it and the code point after it, hence the short window.
  const cluster = graphemes.segment(text.slice(start, max + 2)).containing(limit)
  if (cluster !== undefined && cluster.index > 0) return { end: start + cluster.index, next: start + cluster.index }
  // A single grapheme longer than the limit: still never split a surrogate pair.
  const code = text.charCodeAt(max - 1)
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max
  return { end, next: end }
}

/** The HTML of text[from, to): close the tags the next run doesn't share, open the ones it adds. */
const renderHtml = (runs: ReadonlyArray<Run>, from: number, to: number): string => {
  const closeAll = (marks: ReadonlyArray<Mark>): string => marks.map((m) => m.close).reverse().join("")
  let html = ""
  let open: ReadonlyArray<Mark> = []
  let offset = 0
  for (const run of runs) {
    const text = run.text.slice(Math.max(0, from - offset), Math.max(0, to - offset))
    offset += run.text.length
    if (text === "") continue
    let shared = 0
    while (shared < open.length && open[shared] === run.marks[shared]) shared++
    html += closeAll(open.slice(shared)) + run.marks.slice(shared).map((m) => m.open).join("") + escapeText(text)
    open = run.marks
    if (offset >= to) break
  }
  return html + closeAll(open)
}

/** Render LLM Markdown as Telegram HTML (parse_mode "HTML"), split so each chunk's visible text fits Telegram's limit. */
export const toTelegramChunks = (markdown: string, limit = maxMessageLength): ReadonlyArray<TelegramChunk> => {
  if (!Number.isInteger(limit) || limit < 2) throw new RangeError(`limit must be an integer >= 2, got ${limit}`)
  // Fresh options: the lexer would otherwise read (and mutate) marked's global defaults.
  const runs = blocks(Lexer.lex(markdown, { gfm: true, breaks: false, pedantic: false }), [])
  const plain = plainOf(runs)
  const chunks: Array<TelegramChunk> = []
  let start = 0
  while (start < plain.length) {
    while (plain[start] === "\n") start++
    const { end, next } = findBreak(plain, start, limit)
    let trimmed = end
    while (trimmed > start && /\s/.test(plain.charAt(trimmed - 1))) trimmed--
    if (trimmed > start) chunks.push({ html: renderHtml(runs, start, trimmed), plain: plain.slice(start, trimmed) })
    start = next
  }
  return chunks
}
