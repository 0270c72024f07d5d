import { describe, expect, it } from "vitest"
import { type TelegramChunk, toTelegramChunks } from "../../../src/services/telegram/TelegramMarkdown.ts"

// ---------------------------------------------------------------------------------------------------------------
// A strict reader of Telegram HTML: it accepts only what Telegram documents (and what the module promises), and
// returns the visible text, so every chunk can be checked to be well-formed and to show exactly its `plain`.
// ---------------------------------------------------------------------------------------------------------------

const ALLOWED_TAGS = new Set(["b", "i", "u", "s", "code", "pre", "a", "blockquote", "tg-spoiler"])
const TEXT_ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">" }
const ATTRIBUTE_ENTITIES: Readonly<Record<string, string>> = { ...TEXT_ENTITIES, quot: "\"" }

const decodeAttribute = (value: string): string => {
  if (/&(?!amp;|lt;|gt;|quot;)/.test(value)) throw new Error(`unescaped & in attribute: ${value}`)
  return value.replace(/&(amp|lt|gt|quot);/g, (_, name: string) => ATTRIBUTE_ENTITIES[name] ?? "")
}

interface Open {
  readonly name: string
  hasContent: boolean
}

const visibleText = (html: string): string => {
  const stack: Array<Open> = []
  let text = ""
  const inside = (name: string): boolean => stack.some((open) => open.name === name)
  const addContent = (): void => {
    for (const open of stack) open.hasContent = true
  }
  const token = /<(\/?)([a-z-]+)((?: [a-z]+="[^"<>]*")*)>|&(amp|lt|gt);|([^<>&]+)|([\s\S])/gy
  let match: RegExpExecArray | null
  while ((match = token.exec(html)) !== null) {
    const [whole, slash, name, attributes, entity, plainText, stray] = match
    if (stray !== undefined) throw new Error(`unescaped ${JSON.stringify(stray)} at ${match.index} in ${html}`)
    if (plainText !== undefined || entity !== undefined) {
      text += plainText ?? TEXT_ENTITIES[entity ?? ""] ?? ""
      addContent()
      continue
    }
    if (name === undefined || !ALLOWED_TAGS.has(name)) throw new Error(`tag not allowed: ${whole}`)
    const top = stack.at(-1)
    if (slash === "/") {
      if (attributes) throw new Error(`attributes on a closing tag: ${whole}`)
      if (top?.name !== name) throw new Error(`${whole} closes ${top?.name ?? "nothing"} in ${html}`)
      stack.pop()
      continue
    }
    const attrs = [...(attributes ?? "").matchAll(/ ([a-z]+)="([^"]*)"/g)].map(([, key, value]) => [key, decodeAttribute(value ?? "")])
    if (name === "a") {
      if (attrs.length !== 1 || attrs[0]?.[0] !== "href") throw new Error(`<a> needs exactly href: ${whole}`)
      if (!/^https?:\/\//i.test(attrs[0][1] ?? "")) throw new Error(`unsafe href: ${whole}`)
    } else if (name === "code" && attrs.length > 0) {
      const language = attrs.length === 1 && attrs[0]?.[0] === "class" && attrs[0][1]?.startsWith("language-")
      if (!language || top?.name !== "pre" || top.hasContent) throw new Error(`class only on <pre>'s first <code>: ${html}`)
    } else if (attrs.length > 0) {
      throw new Error(`attributes not allowed: ${whole}`)
    }
    if (top?.name === "pre" && !(name === "code" && attrs.length > 0)) throw new Error(`tag inside <pre>: ${html}`)
    if (inside("code")) throw new Error(`tag inside <code>: ${html}`)
    if (name === "blockquote" && inside("blockquote")) throw new Error(`nested blockquote: ${html}`)
    if (name === "a" && inside("a")) throw new Error(`nested link: ${html}`)
    addContent()
    stack.push({ name, hasContent: false })
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.map((open) => open.name).join(", ")} in ${html}`)
  return text
}

const hasLoneSurrogate = (text: string): boolean => /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text)
const withoutWhitespace = (text: string): string => text.replace(/\s+/g, "")

/** Every call in this suite goes through here, so every chunk produced is checked. */
const render = (markdown: string, limit?: number): ReadonlyArray<TelegramChunk> => {
  const chunks = toTelegramChunks(markdown, limit)
  for (const chunk of chunks) {
    expect(visibleText(chunk.html)).toBe(chunk.plain)
    expect(chunk.plain.length).toBeLessThanOrEqual(limit ?? 4096)
    expect(chunk.plain.trim()).not.toBe("")
    expect(hasLoneSurrogate(chunk.plain)).toBe(false)
  }
  return chunks
}

/** The HTML of an answer short enough for one message. */
const html = (markdown: string): string => {
  const chunks = render(markdown)
  expect(chunks).toHaveLength(1)
  return chunks[0]?.html ?? ""
}

const plains = (markdown: string, limit?: number): ReadonlyArray<string> => render(markdown, limit).map((c) => c.plain)
const htmls = (markdown: string, limit?: number): ReadonlyArray<string> => render(markdown, limit).map((c) => c.html)

describe("the test's HTML validator", () => {
  it("accepts Telegram HTML and returns its visible text", () => {
    expect(visibleText(`<b>a <i>b</i></b> &lt;&amp;&gt; <a href="https://e.x/?a=1&amp;b=&quot;">l</a>`)).toBe(`a b <&> l`)
    expect(visibleText(`<pre><code class="language-ts">x</code></pre><blockquote>q</blockquote>`)).toBe("xq")
  })

  it.each([
    ["unclosed", "<b>x"],
    ["crossed", "<b><i>x</b></i>"],
    ["unknown tag", "<p>x</p>"],
    ["stray <", "a < b"],
    ["stray >", "a > b"],
    ["stray &", "a & b"],
    ["other entity", "a &nbsp; b"],
    ["quot in text", "&quot;"],
    ["unsafe link", `<a href="javascript:x">x</a>`],
    ["unescaped & in href", `<a href="https://e.x/?a&b">x</a>`],
    ["nested quote", "<blockquote><blockquote>x</blockquote></blockquote>"],
    ["tag in code", "<code><b>x</b></code>"],
    ["class off pre", `<code class="language-ts">x</code>`],
    ["unmatched close", "x</b>"]
  ])("rejects %s", (_, bad) => {
    expect(() => visibleText(bad)).toThrow()
  })
})

describe("toTelegramChunks: conversions", () => {
  it("bold, italic, strikethrough and inline code", () => {
    expect(html("**b** and __b__")).toBe("<b>b</b> and <b>b</b>")
    expect(html("*i* and _i_")).toBe("<i>i</i> and <i>i</i>")
    expect(html("~~gone~~")).toBe("<s>gone</s>")
    expect(html("run `npm i` now")).toBe("run <code>npm i</code> now")
    expect(html("**a *b **c** d* e**")).toBe("<b>a <i>b <b>c</b> d</i> e</b>")
  })

  it("fenced code blocks, with and without a language, and indented code", () => {
    expect(html("```ts\nconst a = 1 < 2 && 3\n```")).toBe(`<pre><code class="language-ts">const a = 1 &lt; 2 &amp;&amp; 3</code></pre>`)
    expect(html("```\nplain <b>&amp;</b>\n```")).toBe("<pre>plain &lt;b&gt;&amp;amp;&lt;/b&gt;</pre>")
    expect(html("text\n\n    indented\n      more")).toBe("text\n\n<pre>indented\n  more</pre>")
    expect(html("```c++\nx\n```")).toBe(`<pre><code class="language-c++">x</code></pre>`)
    expect(html("```\"><script>\nx\n```")).toBe(`<pre><code class="language-&quot;&gt;&lt;script&gt;">x</code></pre>`)
  })

  it("only http(s) links become <a>; every other scheme keeps just its text", () => {
    expect(html("[site](https://e.x/a?b=1&c=\"d\")")).toBe(`<a href="https://e.x/a?b=1&amp;c=%22d%22">site</a>`)
    expect(html("[x](http://e.x) [c](tg://resolve?domain=x) [m](mailto:a@b.c)")).toBe(`<a href="http://e.x/">x</a> c m`)
    expect(html("[bad](javascript:alert(1)) [rel](/path) [ftp](ftp://e.x) [d](data:text/html,<b>hi</b>)")).toBe("bad rel ftp d")
    expect(html("[JaVaScRiPt](JAVASCRIPT:alert(1)) [v](vbscript:x) [f](file:///etc/passwd) [h](https:no-slashes)")).toBe("JaVaScRiPt v f h")
    // No mention of a user by id from LLM text (Telegram's text_mention is <a href="tg://user?id=...">).
    expect(html("[Pavel](tg://user?id=1) [admin](tg://openmessage?user_id=1)")).toBe("Pavel admin")
    expect(html("write to ops@e.example")).toBe("write to ops@e.example")
    expect(html("[**bold** link](https://e.x)")).toBe(`<a href="https://e.x/"><b>bold</b> link</a>`)
    expect(html("[](https://e.x)")).toBe(`<a href="https://e.x/">https://e.x</a>`)
    expect(html("see <https://e.x> or https://f.y")).toBe(`see <a href="https://e.x/">https://e.x</a> or <a href="https://f.y/">https://f.y</a>`)
    expect(html("![a cat](https://e.x/cat.png)")).toBe(`<a href="https://e.x/cat.png">a cat</a>`)
  })

  it("shows a link's real domain beside text that names another one", () => {
    expect(html("[paypal.com](https://evil.example/login)")).toBe(`<a href="https://evil.example/login">paypal.com</a> (evil.example)`)
    expect(html("[https://bank.example/secure](http://phish.example)")).toBe(
      `<a href="http://phish.example/">https://bank.example/secure</a> (phish.example)`
    )
    expect(html("**[WWW.Bank.Example](https://login.bank-example.net)**")).toBe(
      `<b><a href="https://login.bank-example.net/">WWW.Bank.Example</a> (login.bank-example.net)</b>`
    )
    // The same domain (with or without www, any case), or text that is not a domain: as is.
    expect(html("[www.Example.com](https://example.com/x) [example.com/docs](https://www.example.com/docs)")).toBe(
      `<a href="https://example.com/x">www.Example.com</a> <a href="https://www.example.com/docs">example.com/docs</a>`
    )
    // The host a client opens is the one compared: the link is sent as the URL parser reads it.
    expect(html("[paypal.com](https://paypal.com\\\\@evil.example)")).toBe(`<a href="https://paypal.com/@evil.example">paypal.com</a>`)
    expect(html("[paypal.com](https://paypal.com@evil.example)")).toBe(`<a href="https://paypal.com@evil.example/">paypal.com</a> (evil.example)`)
    // A domain inside the text, with a final dot, or with a full-width dot is still named.
    expect(html("[Log in at paypal.com.](https://evil.example)")).toBe(`<a href="https://evil.example/">Log in at paypal.com.</a> (evil.example)`)
    expect(html("[paypal\uff0ecom](https://evil.example)")).toBe(`<a href="https://evil.example/">paypal\uff0ecom</a> (evil.example)`)
    // An internationalised domain is its punycode: no false alarm.
    expect(html("[münchen.de](https://xn--mnchen-3ya.de/)")).toBe(`<a href="https://xn--mnchen-3ya.de/">münchen.de</a>`)
    expect(html("[click here](https://evil.example) [v1.2](https://e.example)")).toBe(
      `<a href="https://evil.example/">click here</a> <a href="https://e.example/">v1.2</a>`
    )
  })

  it("headings become bold lines", () => {
    expect(html("# One\n## Two `code`\n###### Six\n\nText\n\nSetext\n===")).toBe(
      "<b>One</b>\n\n<b>Two <code>code</code></b>\n\n<b>Six</b>\n\nText\n\n<b>Setext</b>"
    )
  })

  it("bullet lists use •, ordered lists keep their numbers, nested lists are indented", () => {
    expect(html("- one\n* two\n+ three")).toBe("• one\n\n• two\n\n• three")
    expect(html("- a\n- b\n  - c\n    - d\n- e")).toBe("• a\n• b\n  • c\n    • d\n• e")
    expect(html("1. one\n2. two\n   - sub\n3. three")).toBe("1. one\n2. two\n   • sub\n3. three")
    expect(html("3. three\n4. **four**")).toBe("3. three\n4. <b>four</b>")
    expect(html("1. a\n1. b\n1. c")).toBe("1. a\n2. b\n3. c")
    expect(html("- a\n\n- b")).toBe("• a\n\n• b")
    expect(html("- item\n\n  second paragraph")).toBe("• item\n\n  second paragraph")
    expect(html("- [ ] todo\n- [x] done")).toBe("• ☐ todo\n• ☑ done")
  })

  it("blockquotes, including multi-paragraph and nested ones (Telegram can't nest quotes)", () => {
    expect(html("> quoted **text**")).toBe("<blockquote>quoted <b>text</b></blockquote>")
    expect(html("> a\n>\n> b\n\nafter")).toBe("<blockquote>a\n\nb</blockquote>\n\nafter")
    expect(html("> outer\n>\n> > inner")).toBe("<blockquote>outer\n\ninner</blockquote>")
    expect(html("> - x\n> - y")).toBe("<blockquote>• x\n• y</blockquote>")
  })

  it("tables become a pre block of aligned text", () => {
    expect(html("| Name | Qty |\n|---|---:|\n| **apple** | 3 |\n| kiwi | 12 |")).toBe(
      "<pre>Name  | Qty\n------+----\napple | 3\nkiwi  | 12</pre>"
    )
    expect(html("| a<b |\n|---|\n| & |")).toBe("<pre>a&lt;b\n---\n&amp;</pre>")
  })

  it("horizontal rules become a line of ———", () => {
    expect(html("a\n\n---\n\nb\n\n***\n\n___")).toBe("a\n\n———\n\nb\n\n———\n\n———")
  })

  it("raw HTML is shown as escaped text, never passed through", () => {
    expect(html("<div>\n<b>hi</b>\n</div>")).toBe("&lt;div&gt;\n&lt;b&gt;hi&lt;/b&gt;\n&lt;/div&gt;")
    expect(html("x <i>y</i> <br> <!-- c -->")).toBe("x &lt;i&gt;y&lt;/i&gt; &lt;br&gt; &lt;!-- c --&gt;")
    expect(html(`<script>alert("x")</script>`)).toBe(`&lt;script&gt;alert("x")&lt;/script&gt;`)
  })

  it("line breaks, escapes and entity references", () => {
    expect(html("line one\nline two")).toBe("line one\nline two")
    expect(html("hard  \nbreak")).toBe("hard\nbreak")
    expect(html("\\*not italic\\* \\_nor this\\_")).toBe("*not italic* _nor this_")
    expect(render("Tom &amp; Jerry &lt;3 &copy; &#128512; &amp;lt; &constructor;")[0]).toEqual({
      html: "Tom &amp; Jerry &lt;3 &amp;copy; 😀 &amp;lt; &amp;constructor;",
      plain: "Tom & Jerry <3 &copy; 😀 &lt; &constructor;"
    })
  })

  it("plain is the visible text without markup", () => {
    expect(render("# Title\n\n**b** [l](https://e.x) `c`\n\n> q")).toEqual([
      { html: `<b>Title</b>\n\n<b>b</b> <a href="https://e.x/">l</a> <code>c</code>\n\n<blockquote>q</blockquote>`, plain: "Title\n\nb l c\n\nq" }
    ])
  })
})

describe("toTelegramChunks: escaping and broken markdown", () => {
  it("escapes <, > and & in text", () => {
    expect(html("x < y && y > z")).toBe("x &lt; y &amp;&amp; y &gt; z")
    expect(html(`"quotes" and 'apostrophes' stay`)).toBe(`"quotes" and 'apostrophes' stay`)
    expect(html("`<b>` & `a && b`")).toBe("<code>&lt;b&gt;</code> &amp; <code>a &amp;&amp; b</code>")
  })

  it.each([
    ["**bold with no end", "**bold with no end"],
    ["a lone _ here", "a lone _ here"],
    ["snake_case_name and a_b_c", "snake_case_name and a_b_c"],
    ["2 * 3 * 4 = 24", "2 * 3 * 4 = 24"],
    ["`unclosed code", "`unclosed code"],
    ["[broken](link", "[broken](link"],
    ["~~strike", "~~strike"],
    ["**unclosed *nested and_more_", "**unclosed *nested and_more_"],
    ["stray < and & and <tag", "stray &lt; and &amp; and &lt;tag"],
    ["```py\nprint(1)", `<pre><code class="language-py">print(1)</code></pre>`]
  ])("keeps %j visible and valid", (markdown, expected) => {
    expect(html(markdown)).toBe(expected)
  })

  it("returns nothing for empty or whitespace-only input", () => {
    expect(render("")).toEqual([])
    expect(render("   ")).toEqual([])
    expect(render("\n\n\t \n")).toEqual([])
    expect(render("[ref]: https://e.x")).toEqual([])
  })

  it("rejects a limit too small to hold a character", () => {
    expect(() => toTelegramChunks("x", 1)).toThrow(RangeError)
    expect(() => toTelegramChunks("x", 10.5)).toThrow(RangeError)
  })
})

describe("toTelegramChunks: splitting", () => {
  it("prefers paragraph breaks, then line breaks, then spaces, then cuts a word", () => {
    expect(plains("first para here\n\nsecond one", 20)).toEqual(["first para here", "second one"])
    expect(plains("line one\nline two\nline three", 20)).toEqual(["line one\nline two", "line three"])
    expect(plains("alpha beta gamma delta", 12)).toEqual(["alpha beta", "gamma delta"])
    expect(plains("abcdefghij", 4)).toEqual(["abcd", "efgh", "ij"])
    expect(plains("a para\n\nline one\nline two words", 16)).toEqual(["a para", "line one", "line two words"])
  })

  it("closes formatting at a split and reopens it in the next chunk", () => {
    expect(htmls("**bold text that is long** tail", 10)).toEqual(["<b>bold text</b>", "<b>that is</b>", "<b>long</b> tail"])
    expect(htmls("> quote one\n>\n> quote two", 12)).toEqual(["<blockquote>quote one</blockquote>", "<blockquote>quote two</blockquote>"])
  })

  it("closes a split code block and reopens it with the same language", () => {
    expect(htmls("```py\nline1\nline2\nline3\n```", 12)).toEqual([
      `<pre><code class="language-py">line1\nline2</code></pre>`,
      `<pre><code class="language-py">line3</code></pre>`
    ])
    expect(htmls("```\nif x:\n    y()\n```", 8)).toEqual(["<pre>if x:</pre>", "<pre>    y()</pre>"])
  })

  it("uses 4096 as the default limit", () => {
    expect(plains("x".repeat(5000)).map((p) => p.length)).toEqual([4096, 904])
  })

  it("splits a 10,000-character answer with paragraphs and a long code block, keeping all the text", () => {
    const paragraph = (n: number): string => `Paragraph ${n} has **bold** text & <angles> in it. `.repeat(8).trim()
    const codeLines = Array.from({ length: 150 }, (_, i) => `  const value${i} = compute(${i}) // <${i}> & more`)
    const markdown = [
      paragraph(1),
      paragraph(2),
      "```ts\n" + codeLines.join("\n") + "\n```",
      ...Array.from({ length: 10 }, (_, i) => paragraph(i + 3))
    ].join("\n\n")
    expect(markdown.length).toBeGreaterThan(10_000)

    const whole = render(markdown, 100_000)
    expect(whole).toHaveLength(1)
    const chunks = render(markdown)
    expect(chunks.length).toBeGreaterThanOrEqual(3)
    expect(withoutWhitespace(chunks.map((c) => c.plain).join(""))).toBe(withoutWhitespace(whole[0]?.plain ?? ""))

    // The first split is the paragraph break before the code block, which then starts the second message.
    expect(chunks[0]?.plain).toBe(render(`${paragraph(1)}\n\n${paragraph(2)}`)[0]?.plain)
    expect(chunks[1]?.html.startsWith(`<pre><code class="language-ts">  const value0 =`)).toBe(true)
    // The code block doesn't fit one message: it continues, reopened with its language and indentation.
    expect(chunks[1]?.html.endsWith("</code></pre>")).toBe(true)
    expect(chunks[2]?.html.startsWith(`<pre><code class="language-ts">  const value`)).toBe(true)
    // Code is cut between lines, never inside one.
    for (const line of codeLines) expect(chunks.some((c) => c.plain.includes(line.replace(/^ +/, "")))).toBe(true)
    const codeChunks = chunks.filter((c) => c.html.includes("<pre>"))
    for (const c of codeChunks) expect(c.plain.split("\n").every((l) => l.startsWith("  const") || !l.includes("const"))).toBe(true)
  })

  it("cuts a single 9,000-character word into full-size pieces", () => {
    const word = Array.from({ length: 9000 }, (_, i) => "abcdefghij"[i % 10]).join("")
    const chunks = plains(word)
    expect(chunks.map((c) => c.length)).toEqual([4096, 4096, 808])
    expect(chunks.join("")).toBe(word)
  })

  it("never splits a surrogate pair or an emoji at the split point", () => {
    expect(plains("a".repeat(4095) + "😀" + "b".repeat(10))).toEqual(["a".repeat(4095), "😀" + "b".repeat(10)])
    const long = plains("a" + "😀".repeat(3000))
    expect(long.map((c) => c.length)).toEqual([4095, 1906])
    expect(long.join("")).toBe("a" + "😀".repeat(3000))
    const family = "👨‍👩‍👧‍👦"
    expect(plains("a".repeat(4090) + family + "🇺🇦")).toEqual(["a".repeat(4090), family + "🇺🇦"])
    expect(plains("ab👍🏽🇺🇦", 5)).toEqual(["ab", "👍🏽", "🇺🇦"])
    // A single grapheme longer than the limit still keeps its surrogate pairs whole.
    expect(plains("👍🏽", 3)).toEqual(["👍", "🏽"])
    expect(plains("x😀", 2)).toEqual(["x", "😀"])
  })

  it("keeps every output well-formed and every character, whatever the input and limit", () => {
    const fragments = [
      "**", "*", "_", "__", "~~", "`", "```", "```py\n", "\n", "\n\n", "> ", "- ", "1. ", "# ", "word ", "more words ",
      "[a](https://x.y/?q=1&r=\"2\")", "[b](javascript:alert(1))", "<b>", "</i>", "&", "&amp;", "<", ">", "|a|b|\n|-|-|\n|1|2|\n",
      "😀", "👨‍👩‍👧", "\\", "---\n", "snake_case_name ", "2 * 3 ", "    code\n", "   ", "\t"
    ]
    let seed = 42
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
      return seed % n
    }
    for (let doc = 0; doc < 300; doc++) {
      const markdown = Array.from({ length: 40 }, () => fragments[random(fragments.length)]).join("")
      const limit = [2, 3, 7, 20, 64, 4096][random(6)] ?? 4096
      const whole = render(markdown, 1_000_000).map((c) => c.plain).join("")
      const split = render(markdown, limit).map((c) => c.plain).join("")
      expect(withoutWhitespace(split)).toBe(withoutWhitespace(whole))
    }
  })
})
