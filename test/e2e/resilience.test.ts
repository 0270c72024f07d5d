import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { texts } from "../../src/services/chat/ChatTexts.ts"
import { mediaMessageUpdate, mentioningBot, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { openaiKey, type Stack, startStack, waitForMetric, waitForStatus } from "../support/Stack.ts"

describe("resilience of a turn", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.stop())
  beforeEach(() => stack.resetFakes())

  it("keeps the answer when Telegram stays away past its retries, and delivers it once Telegram is back", async () => {
    // Telegram refuses every send for 12 s: longer than one turn's retries (about 9 s).
    stack.telegram.failFor("sendMessage", { code: 502 }, 12_000)
    const chatId = 7001
    expect((await stack.post({ update_id: 7001, ...textMessageUpdate({ chatId, text: "during an outage" }) })).status).toBe(200)
    await waitForStatus(stack, 7001, "answered", 60_000)
    expect(Number(stack.query("select attempts from messages where update_id = 7001"))).toBeGreaterThanOrEqual(2)
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual(["Echo: during an outage"])
    // The LLM answered once; the redo delivered the kept answer, and its usage counts once.
    expect(stack.openai.requests).toHaveLength(1)
    expect(stack.query("select count(*) || ':' || min(outcome) from usage u join messages m on m.id = u.message_id where m.update_id = 7001")).toBe("1:answered")
  }, 90_000)

  it("does not ask the LLM while the chat's flood wait is longer than a turn sits out", async () => {
    // A group: its 429 is its own (a private chat's would pause the whole bot for 40 s).
    const chatId = -7005
    const postponed = /chat_turns_total\{[^}]*outcome="postponed"[^}]*\} (\d+)/
    const before = Number(postponed.exec(await (await fetch(`${stack.url}/metrics`)).text())?.[1] ?? 0)
    // The first send gets a 40 s flood wait: the answer is kept and the message handed back.
    stack.telegram.failNext("sendMessage", { code: 429, retryAfter: 40 }, 1)
    expect((await stack.post({ update_id: 7005, ...textMessageUpdate({ chatId, userId: 7005, groupTitle: "Team", ...mentioningBot("flooded") }) })).status).toBe(200)
    await stack.telegram.waitFor((t) => t.callsFor(chatId, "sendMessage").length >= 1 || undefined, 10_000)
    // Wait until later turns (the queue's retries, the sweeper) took the message up and postponed it again.
    await waitForMetric(stack, postponed, (n) => n >= before + 3, 20_000)
    // Handed back with the answer kept, and the wait not counted against its attempts.
    expect(stack.query("select status || ':' || (answer is not null) || ':' || (attempts <= 1) from messages where update_id = 7005")).toBe("queued:true:true")
    expect(stack.openai.requests).toHaveLength(1)
    expect(stack.telegram.callsFor(chatId, "sendMessage")).toHaveLength(1) // nothing sent during the wait
    expect(stack.telegram.violations).toEqual([])
  })

  it("fails the message, keeping its LLM usage, when Telegram refuses the final reply for good", async () => {
    stack.telegram.failNext("sendMessage", { code: 400, description: "Bad Request: MESSAGE_TOO_LONG" })
    expect((await stack.post({ update_id: 7006, ...textMessageUpdate({ chatId: 7006, text: "refused" }) })).status).toBe(200)
    await waitForStatus(stack, 7006, "failed")
    expect(stack.query("select error from messages where update_id = 7006")).toBe("Telegram: Bad Request: MESSAGE_TOO_LONG")
    expect(stack.query("select outcome || ':' || model || ':' || (tokens_out > 0) from usage u join messages m on m.id = u.message_id where m.update_id = 7006")).toBe("failed:gpt-test:true")
  })

  it("stores text with NUL bytes and lone surrogates instead of failing the batch", async () => {
    const update = {
      update_id: 7002,
      ...textMessageUpdate({ chatId: 7002, text: "nul\u0000here and a lone \ud800 surrogate", firstName: "Bad\u0000\udc00Name" })
    }
    const neighbour = { update_id: 7003, ...textMessageUpdate({ chatId: 7003, text: "same batch" }) }
    const [bad, good] = await Promise.all([stack.post(update), stack.post(neighbour)])
    expect([bad.status, good.status]).toEqual([200, 200])
    await waitForStatus(stack, 7002, "answered")
    await waitForStatus(stack, 7003, "answered")
    expect(stack.query("select text from messages where update_id = 7002")).toBe("nulhere and a lone \ufffd surrogate")
    expect(stack.query("select first_name from users where id = 7002")).toBe("Bad\ufffdName")
  })

  it("stores every outside string clean: names, username, language, group title, caption, album id", async () => {
    const dirty = (what: string) => `${what}\u0000\ud800`
    const clean = (what: string) => `${what}\ufffd`
    const photo = mediaMessageUpdate({ chatId: -7010, userId: 7010, groupTitle: "x", kind: "photo", caption: "", mediaGroupId: "g" }) as unknown as {
      message: Record<string, unknown> & { from: Record<string, unknown>; chat: Record<string, unknown> }
    }
    const message = {
      ...photo.message,
      from: { ...photo.message.from, first_name: dirty("first"), last_name: dirty("last"), username: dirty("user"), language_code: dirty("en") },
      chat: { ...photo.message.chat, title: dirty("title") },
      caption: dirty("@fake_test_bot caption"),
      caption_entities: [{ type: "mention", offset: 0, length: 14 }],
      media_group_id: dirty("album")
    }
    expect((await stack.post({ update_id: 7010, message })).status).toBe(200)
    await waitForStatus(stack, 7010, "answered")
    expect(stack.query("select concat_ws('|', first_name, last_name, username, language_code) from users where id = 7010"))
      .toBe([clean("first"), clean("last"), clean("user"), clean("en")].join("|"))
    expect(stack.query("select title from chats where id = -7010")).toBe(clean("title"))
    expect(stack.query("select concat_ws('|', text, media_group_id) from messages where update_id = 7010")).toBe(`${clean("caption")}|${clean("album")}`)
  })

  it("delivers and stores an LLM answer holding NUL bytes and lone surrogates once, asking the LLM once", async () => {
    stack.openai.setReply(() => "nul\u0000in the answer and a lone \ud800 surrogate")
    expect((await stack.post({ update_id: 7007, ...textMessageUpdate({ chatId: 7007, text: "say something odd" }) })).status).toBe(200)
    await waitForStatus(stack, 7007, "answered")
    expect(stack.openai.requests).toHaveLength(1)
    expect(stack.telegram.messages(7007).map((m) => m.text)).toEqual(["nulin the answer and a lone \ufffd surrogate"])
    expect(stack.query("select answer from messages where update_id = 7007")).toBe("nulin the answer and a lone \ufffd surrogate")
  })

  it("sends the reply anew when the one an interrupted attempt sent was deleted by the user", async () => {
    // As if a worker crashed mid-turn after sending reply 999, which the user then deleted.
    stack.query(`
      insert into telegram_updates (update_id, kind) values (7004, 'Text');
      insert into chats (id, type) values (7004, 'private');
      insert into users (id, first_name) values (7004, 'Ada');
      insert into messages (update_id, chat_id, user_id, telegram_message_id, text, status, attempts, reply_message_ids)
        values (7004, 7004, 7004, 1, 'redo me', 'processing', 1, '[999]')`)
    await waitForStatus(stack, 7004, "answered", 15_000)
    const messages = stack.telegram.messages(7004)
    expect(messages.map((m) => m.text)).toEqual(["Echo: redo me"])
    expect(stack.query("select reply_message_ids from messages where update_id = 7004")).toBe(`[${messages[0]!.message_id}]`)
  })
})

describe("an LLM error that quotes the API key", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { LOG_LEVEL: "Info" } })
  })
  afterAll(() => stack.stop())

  it("fails the turn without retrying a 401, tells the user the service is unavailable, and keeps the key out of the database", async () => {
    // The key is revoked after the start: the 401 quotes it back, as OpenAI's does.
    stack.openai.failNext({ status: 401 })
    expect((await stack.post({ update_id: 7101, ...textMessageUpdate({ chatId: 7101, text: "hello" }) })).status).toBe(200)
    await waitForStatus(stack, 7101, "failed")
    expect(stack.openai.requests).toHaveLength(1)
    const error = stack.query("select error from messages where update_id = 7101")
    // Its status, code and our description; never its words, which quote the key in part.
    expect(error).toBe("401 invalid_api_key: the LLM server refused the API key (OPENAI_API_KEY)")
    expect(error).not.toContain(openaiKey.slice(0, 8))
    expect(stack.telegram.lastMessage(7101)!.text).toBe(texts.unavailable)
    // What an alert on the operator's key can use.
    await waitForMetric(stack, /llm_errors_total\{status="401"[^}]*\} (\d+)/, (n) => n === 1)
  })
})
