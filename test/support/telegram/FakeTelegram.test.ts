/**
 * Self-tests of the fake Telegram server, driven through the real client (grammY's Api).
 */
import { Api, GrammyError } from "grammy"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeTelegram, startFakeTelegram, textMessageUpdate } from "./FakeTelegram.ts"

const CHAT = 1001
const OTHER_CHAT = 1002

/** Runs `promise`, expecting a GrammyError, and returns it. */
async function grammyError(promise: Promise<unknown>): Promise<GrammyError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e
  )
  if (!(error instanceof GrammyError)) throw new Error(`expected a GrammyError, got ${String(error)}`)
  return error
}

describe("FakeTelegram through grammY's Api", () => {
  let tg: FakeTelegram
  let api: Api

  beforeAll(async () => {
    tg = await startFakeTelegram({ token: "42:SECRET", maxPollSeconds: 2 })
    api = new Api("42:SECRET", { apiRoot: tg.url })
  })
  afterAll(() => tg.close())
  beforeEach(() => tg.reset())

  it("records a send and an edit in the chat state", async () => {
    const sent = await api.sendMessage(CHAT, "<b>Hello</b> &amp; welcome", { parse_mode: "HTML" })
    expect(sent.message_id).toBe(1)
    expect(sent.text).toBe("Hello & welcome")
    expect(sent.entities).toEqual([{ type: "bold", offset: 0, length: 5 }])

    await api.editMessageText(CHAT, sent.message_id, "Hello again")
    const second = await api.sendMessage(CHAT, "second")
    expect(second.message_id).toBe(2)

    const [first, last] = tg.messages(CHAT)
    expect(first).toMatchObject({ message_id: 1, text: "Hello again", raw: "Hello again", edit_count: 1 })
    expect(first?.html).toBeUndefined()
    expect(last).toMatchObject({ message_id: 2, text: "second" })
    expect(tg.callsFor(CHAT).map((c) => c.method)).toEqual(["sendMessage", "editMessageText", "sendMessage"])
    expect(tg.callsFor(CHAT, "editMessageText")[0]?.params).toMatchObject({ message_id: 1, text: "Hello again" })
    expect(tg.messages(OTHER_CHAT)).toEqual([])
  })

  it("stores the visible text and the raw HTML", async () => {
    const html = '<i>x</i> <a href="https://e.com/?a=1&amp;b=2">link</a> <span class="tg-spoiler">s</span> 1 &lt; 2 &#128512;'
    await api.sendMessage(CHAT, html, { parse_mode: "HTML" })
    expect(tg.lastMessage(CHAT)).toMatchObject({
      text: "x link s 1 < 2 😀",
      html,
      parse_mode: "HTML",
      entities: [
        { type: "italic", offset: 0, length: 1 },
        { type: "text_link", offset: 2, length: 4, url: "https://e.com/?a=1&b=2" },
        { type: "spoiler", offset: 7, length: 1 }
      ]
    })
  })

  it("rejects an identical edit with 'message is not modified'", async () => {
    const sent = await api.sendMessage(CHAT, "<b>same</b>", { parse_mode: "HTML" })
    const error = await grammyError(api.editMessageText(CHAT, sent.message_id, "<b>same</b>", { parse_mode: "HTML" }))
    expect(error.error_code).toBe(400)
    expect(error.description).toBe(
      "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
    )
    // Same text but different formatting is a modification.
    await api.editMessageText(CHAT, sent.message_id, "same")
    expect(tg.lastMessage(CHAT)?.entities).toEqual([])
  })

  it("rejects edits of unknown messages, empty and too long texts", async () => {
    expect((await grammyError(api.editMessageText(CHAT, 99, "x"))).description).toBe(
      "Bad Request: message to edit not found"
    )
    expect((await grammyError(api.sendMessage(CHAT, ""))).description).toBe("Bad Request: message text is empty")
    expect((await grammyError(api.sendMessage(CHAT, "<b></b>", { parse_mode: "HTML" }))).description).toBe(
      "Bad Request: message text is empty"
    )
    expect((await grammyError(api.sendMessage(CHAT, "a".repeat(4097)))).description).toBe(
      "Bad Request: message is too long"
    )
    // The limit applies to the visible text: markup does not count.
    await api.sendMessage(CHAT, `<b>${"a".repeat(4096)}</b>`, { parse_mode: "HTML" })
    expect(tg.lastMessage(CHAT)?.text).toHaveLength(4096)
  })

  it.each([
    ["an unsupported tag", "<div>x</div>"],
    ["an unclosed tag", "<b>x"],
    ["misnested tags", "<b><i>x</b></i>"],
    ["an unexpected end tag", "x</b>"],
    ["a bare '<'", "1 < 2"],
    ["a bare '&'", "fish & chips"],
    ["a span without the spoiler class", '<span class="x">y</span>']
  ])("rejects HTML with %s", async (_, html) => {
    const error = await grammyError(api.sendMessage(CHAT, html, { parse_mode: "HTML" }))
    expect(error.error_code).toBe(400)
    expect(error.description).toMatch(/^Bad Request: can't parse entities: /)
    expect(tg.messages(CHAT)).toEqual([])
  })

  it("answers 429 with retry_after and records calls that do not wait as violations", async () => {
    tg.failNext("sendMessage", { code: 429, retryAfter: 2 })
    const error = await grammyError(api.sendMessage(CHAT, "one"))
    expect(error.error_code).toBe(429)
    expect(error.description).toBe("Too Many Requests: retry after 2")
    expect(error.parameters.retry_after).toBe(2)
    expect(tg.violations).toEqual([])

    await api.sendMessage(OTHER_CHAT, "other chats are not blocked")
    expect(tg.violations).toEqual([])

    await api.sendMessage(CHAT, "too early") // the fake answers, but notes the violation
    expect(tg.violations).toHaveLength(1)
    expect(tg.violations[0]).toMatchObject({ method: "sendMessage", chatId: CHAT })
    expect(tg.violations[0]?.earlyByMs).toBeGreaterThan(1000)
  })

  it("injects 5xx and 400/403 faults for the given number of calls", async () => {
    tg.failNext("sendChatAction", { code: 502 }, 2)
    expect((await grammyError(api.sendChatAction(CHAT, "typing"))).error_code).toBe(502)
    expect((await grammyError(api.sendChatAction(CHAT, "typing"))).error_code).toBe(502)
    expect(await api.sendChatAction(CHAT, "typing")).toBe(true)

    tg.failNext("editMessageText", { code: 400, description: "Bad Request: something odd" })
    expect((await grammyError(api.editMessageText(CHAT, 1, "x"))).description).toBe("Bad Request: something odd")
  })

  it("answers 403 for every call to a blocked chat", async () => {
    tg.blockChat(CHAT)
    for (const call of [api.sendMessage(CHAT, "hi"), api.sendChatAction(CHAT, "typing"), api.editMessageText(CHAT, 1, "x")]) {
      const error = await grammyError(call)
      expect(error.error_code).toBe(403)
      expect(error.description).toBe("Forbidden: bot was blocked by the user")
    }
    await api.sendMessage(OTHER_CHAT, "still fine")
  })

  it("long-polls getUpdates: answers as soon as an update is pushed and honours offset", async () => {
    const startedAt = Date.now()
    const poll = api.getUpdates({ timeout: 30 })
    await tg.waitFor((t) => t.calls.some((c) => c.method === "getUpdates"), 2_000)
    const pushed = tg.pushUpdate(textMessageUpdate({ chatId: CHAT, text: "/start" }))
    const updates = await poll
    expect(Date.now() - startedAt).toBeLessThan(1_500)
    expect(updates).toEqual([pushed])
    expect(updates[0]?.message?.text).toBe("/start")

    // Confirming with offset forgets the update; an empty poll ends after its (bounded) timeout.
    expect(await api.getUpdates({ offset: pushed.update_id + 1, timeout: 0 })).toEqual([])
    expect(tg.pendingUpdates()).toEqual([])
  })

  it("supports sendMessageDraft, deleteMessage and the webhook methods", async () => {
    await api.sendMessageDraft(CHAT, 7, "thinking")
    expect(tg.drafts(CHAT)).toMatchObject([{ draft_id: 7, text: "thinking" }])
    const sent = await api.sendMessage(CHAT, "answer")
    expect(tg.drafts(CHAT)).toEqual([])
    await api.deleteMessage(CHAT, sent.message_id)
    expect(tg.messages(CHAT)).toEqual([])
    expect((await grammyError(api.deleteMessage(CHAT, sent.message_id))).description).toBe(
      "Bad Request: message to delete not found"
    )

    await api.setWebhook("https://bot.example/hook", { secret_token: "s3cret" })
    expect((await api.getWebhookInfo()).url).toBe("https://bot.example/hook")
    expect(tg.webhook?.secret_token).toBe("s3cret")
    expect((await grammyError(api.getUpdates())).error_code).toBe(409)
    await api.deleteWebhook()
    expect((await api.getWebhookInfo()).url).toBe("")
    expect((await api.getMe()).id).toBe(42)
  })

  it("answers 404 for unknown methods and 401 for a wrong token", async () => {
    const res = await fetch(`${tg.url}/bot42:SECRET/noSuchMethod`, { method: "POST" })
    expect(res.status).toBe(404)
    expect(await res.json()).toEqual({ ok: false, error_code: 404, description: "Not Found: method not found" })

    const wrong = new Api("42:WRONG", { apiRoot: tg.url })
    const error = await grammyError(wrong.getMe())
    expect(error.error_code).toBe(401)
    expect(error.description).toBe("Unauthorized")
  })

  it("waitFor resolves on state changes and rejects clearly on timeout", async () => {
    const waiting = tg.waitFor((t) => t.lastMessage(CHAT)?.text === "later" && t.lastMessage(CHAT), 2_000)
    setTimeout(() => void api.sendMessage(CHAT, "later"), 20)
    expect((await waiting).message_id).toBe(1)

    await expect(tg.waitFor((t) => t.messages(OTHER_CHAT).length > 0, 100)).rejects.toThrow(
      /FakeTelegram.waitFor: condition not met within 100 ms/
    )
  })

  it("applies the configured latency", async () => {
    tg.setLatency(80)
    const startedAt = Date.now()
    await api.sendChatAction(CHAT, "typing")
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(70)
  })
})
