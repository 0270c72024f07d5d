import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { systemPrompt } from "../../src/services/llm/Prompt.ts"
import { tokenCounter } from "../../src/services/llm/Tokenizer.ts"
import type { ChatCompletionBody } from "../support/FakeOpenAI.ts"
import { type FakeMessage, mentioningBot, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { type Stack, startStack, waitForMetric, waitForStatus } from "../support/Stack.ts"

let nextUpdateId = 1000

const send = async (stack: Stack, chatId: number, text: string) => {
  const update_id = nextUpdateId++
  const res = await stack.post({ update_id, ...textMessageUpdate({ chatId, userId: chatId, text }) })
  expect(res.status).toBe(200)
  return update_id
}

/** The chat's last message once it is final (no streaming cursor) and passes the check. */
const finalMessage = (stack: Stack, chatId: number, check: (m: FakeMessage) => boolean = () => true, timeoutMs = 15_000) =>
  stack.telegram.waitFor((t) => {
    const m = t.lastMessage(chatId)
    return m !== undefined && !m.text.endsWith("▍") && check(m) ? m : undefined
  }, timeoutMs)

const userContents = (body: ChatCompletionBody) =>
  (body.messages ?? []).map((m) => `${m.role}:${String(m.content)}`)

describe("chat turns", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.stop())
  beforeEach(() => stack.resetFakes())

  it("answers one chat's messages one at a time, in the order they came", async () => {
    stack.openai.setReply((body) => ({ text: `${userContents(body).at(-1)} done`, chunkDelayMs: 15, chunkSize: 4 }))
    const chatId = 501
    for (const text of ["m1", "m2", "m3", "m4", "m5"]) await send(stack, chatId, text)
    await stack.telegram.waitFor((t) => t.messages(chatId).filter((m) => m.text.endsWith("done")).length === 5 || undefined, 20_000)
    const requests = stack.openai.requests
    expect(requests.map((r) => userContents(r.body).at(-1))).toEqual(["user:m1", "user:m2", "user:m3", "user:m4", "user:m5"])
    for (let i = 1; i < requests.length; i++) {
      expect(requests[i]!.receivedAt).toBeGreaterThanOrEqual(requests[i - 1]!.completedAt!)
    }
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual(
      ["m1", "m2", "m3", "m4", "m5"].map((m) => `user:${m} done`)
    )
  })

  it("runs different chats at the same time", async () => {
    stack.openai.setReply(() => ({ text: "slow answer", firstTokenDelayMs: 3_000 }))
    const chats = [601, 602, 603, 604, 605, 606, 607, 608]
    await Promise.all(chats.map((chatId) => send(stack, chatId, "hello")))
    await stack.openai.waitFor((o) => o.requests.length === chats.length, 5_000)
    // All eight requests are in flight together: none has finished when the last arrives.
    expect(stack.openai.requests.filter((r) => r.completed)).toEqual([])
    for (const chatId of chats) await finalMessage(stack, chatId, (m) => m.text === "slow answer")
  })

  it("keeps the conversation as context until /new, and none after it", async () => {
    const chatId = 701
    await send(stack, chatId, "first question")
    await finalMessage(stack, chatId, (m) => m.text === "Echo: first question")
    await send(stack, chatId, "second question")
    await finalMessage(stack, chatId, (m) => m.text === "Echo: second question")
    expect(userContents(stack.openai.requests[1]!.body).slice(1)).toEqual([
      "user:first question",
      "assistant:Echo: first question",
      "user:second question"
    ])
    const newId = await send(stack, chatId, "/new")
    await waitForStatus(stack, newId, "answered")
    expect(stack.telegram.lastMessage(chatId)!.text).toContain("new conversation")
    await send(stack, chatId, "third question")
    await finalMessage(stack, chatId, (m) => m.text === "Echo: third question")
    expect(stack.openai.requests).toHaveLength(3) // /new made no LLM call
    expect(userContents(stack.openai.requests[2]!.body)).toEqual([`system:${systemPrompt}`, "user:third question"])
  })

  it("splits an answer over 4096 characters into several messages and loses nothing", async () => {
    const paragraphs = Array.from({ length: 30 }, (_, i) => `Paragraph ${i}: ` + "lorem ipsum dolor sit amet ".repeat(11).trim())
    const answer = paragraphs.join("\n\n")
    expect(answer.length).toBeGreaterThan(8192)
    stack.openai.setReply(() => ({ text: answer, chunkSize: 400 }))
    const chatId = 801
    const updateId = await send(stack, chatId, "tell me a lot")
    await waitForStatus(stack, updateId, "answered", 20_000)
    const messages = stack.telegram.messages(chatId)
    expect(messages.length).toBe(3)
    for (const m of messages) expect(m.text.length).toBeLessThanOrEqual(4096)
    expect(messages.map((m) => m.text).join("\n\n").replace(/\s+/g, " ")).toBe(answer.replace(/\s+/g, " "))
    expect(stack.query(`select reply_message_ids from messages where update_id = ${updateId}`)).toBe(
      JSON.stringify(messages.map((m) => m.message_id)).replace(/,/g, ", ")
    )
  })

  it("renders Markdown that would break MarkdownV2 as Telegram formatting", async () => {
    const answer = "Use `snake_case_name` and **bold** (x) - y. 1+1=2! _it_ #tag {x} a|b [docs](https://example.com/a_(b)) ~~old~~."
    stack.openai.setReply(() => answer)
    const chatId = 802
    const updateId = await send(stack, chatId, "format")
    await waitForStatus(stack, updateId, "answered")
    const m = stack.telegram.lastMessage(chatId)!
    expect(m.parse_mode).toBe("HTML")
    expect(m.text).toBe("Use snake_case_name and bold (x) - y. 1+1=2! it #tag {x} a|b docs old.")
    expect(m.entities.map((e) => e.type).sort()).toEqual(["bold", "code", "italic", "strikethrough", "text_link"])
    expect(stack.telegram.calls.filter((c) => (c.status ?? 200) >= 400)).toEqual([])
  })

  it("resends as plain text when Telegram refuses the formatting", async () => {
    stack.openai.setReply(() => "**important** answer")
    // The final message is the first real one in a private chat (previews are drafts).
    stack.telegram.failNext("sendMessage", { code: 400, description: "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0" })
    const chatId = 803
    const updateId = await send(stack, chatId, "hi")
    await waitForStatus(stack, updateId, "answered")
    const m = stack.telegram.lastMessage(chatId)!
    expect(m.text).toBe("important answer")
    expect(m.parse_mode).toBeUndefined()
    expect(stack.telegram.messages(chatId)).toHaveLength(1)
  })

  it("retries OpenAI after a 429, waiting its Retry-After", async () => {
    stack.openai.failNext({ status: 429, retryAfterSeconds: 1 })
    const chatId = 804
    const updateId = await send(stack, chatId, "busy?")
    await waitForStatus(stack, updateId, "answered")
    // How long it waits is the retry schedule's rule, tested on virtual time (AiOpenAi.test.ts).
    expect(stack.openai.requests.map((r) => r.status)).toEqual([429, 200])
    expect(stack.telegram.lastMessage(chatId)!.text).toBe("Echo: busy?")
  })

  it("tells the user briefly and records the turn as failed when OpenAI keeps failing", async () => {
    stack.openai.failNext({ status: 500 }, 10)
    const chatId = 805
    const updateId = await send(stack, chatId, "anyone?")
    await waitForStatus(stack, updateId, "failed", 20_000)
    expect(stack.openai.requests).toHaveLength(5) // the first try and four retries
    expect(stack.telegram.lastMessage(chatId)!.text).toBe("Sorry, I couldn't answer that just now. Please try again in a moment.")
    expect(stack.query(`select outcome || ':' || model from usage u join messages m on m.id = u.message_id where m.update_id = ${updateId}`)).toBe("failed:gpt-test")
  })

  it("waits Telegram's retry_after after a 429 and then delivers", async () => {
    stack.telegram.failNext("sendMessage", { code: 429, retryAfter: 1 })
    const chatId = 806
    const updateId = await send(stack, chatId, "ping")
    await waitForStatus(stack, updateId, "answered")
    const sends = stack.telegram.callsFor(chatId, "sendMessage")
    expect(sends.map((c) => c.status)).toEqual([429, 200])
    // The fake counts a call before retry_after ran out (from its own 429) as a violation.
    expect(stack.telegram.violations).toEqual([])
    expect(stack.telegram.lastMessage(chatId)!.text).toBe("Echo: ping")
  })

  it("stops writing to a user who blocked the bot: no retry, chat marked unreachable", async () => {
    const chatId = 807
    stack.telegram.blockChat(chatId)
    const first = await send(stack, chatId, "are you there")
    await waitForStatus(stack, first, "skipped")
    expect(stack.query(`select unreachable_at is not null from chats where id = ${chatId}`)).toBe("t")
    const attempts = stack.telegram.callsFor(chatId).filter((c) => c.method !== "sendChatAction")
    expect(attempts.map((c) => c.status)).toEqual([403])
  })

  it("streams into a private chat as a draft, about once a second, then sends the full text once", async () => {
    const answer = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ")
    // Typing shows while the LLM thinks, until the first text.
    stack.openai.setReply(() => ({ text: answer, chunkSize: 6, chunkDelayMs: 100, firstTokenDelayMs: 800 }))
    const chatId = 808
    const updateId = await send(stack, chatId, "stream please")
    await waitForStatus(stack, updateId, "answered", 20_000)
    expect(stack.telegram.callsFor(chatId, "sendChatAction").length).toBeGreaterThanOrEqual(1)
    // The stream lasts seconds; previews are throttled to one a second (the exact rule is
    // ReplyWriter.test.ts's, on virtual time): a few drafts, not one per delta.
    const deltas = Math.ceil(answer.length / 6)
    const drafts = stack.telegram.callsFor(chatId, "sendMessageDraft")
    expect(drafts.length).toBeGreaterThanOrEqual(3)
    expect(drafts.length).toBeLessThanOrEqual(deltas / 4)
    expect(new Set(drafts.map((c) => c.params["draft_id"])).size).toBe(1)
    expect(String(drafts.at(-1)!.params["text"])).toMatch(/ ▍$/)
    expect(stack.telegram.callsFor(chatId, "editMessageText")).toEqual([])
    expect(stack.telegram.callsFor(chatId, "sendMessage")).toHaveLength(1)
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual([answer])
    expect(stack.telegram.drafts(chatId)).toEqual([]) // the real message replaced the draft
  })

  it("streams into a group by editing one message at the group's pace (20 a minute), then the full text", async () => {
    const answer = Array.from({ length: 40 }, (_, i) => `word${i}`).join(" ")
    stack.openai.setReply(() => ({ text: answer, chunkSize: 6, chunkDelayMs: 100 }))
    const chatId = -808
    const update_id = nextUpdateId++
    const res = await stack.post({ update_id, ...textMessageUpdate({ chatId, userId: 8080, groupTitle: "Team", ...mentioningBot("stream here") }) })
    expect(res.status).toBe(200)
    await waitForStatus(stack, update_id, "answered", 20_000)
    const calls = stack.telegram.callsFor(chatId).filter((c) => c.method !== "sendChatAction")
    expect(calls[0]!.method).toBe("sendMessage")
    expect(calls.length).toBeGreaterThanOrEqual(3) // first message, edits, final edit
    expect(calls.length).toBeLessThanOrEqual(Math.ceil(answer.length / 6) / 4) // throttled, not one per delta
    expect(calls.slice(1).map((c) => c.method)).toEqual(calls.slice(1).map(() => "editMessageText"))
    // Previews go only into a rested group: one every 3.6 s (the final edit may use the burst).
    const previews = calls.slice(0, -1).map((c) => c.at)
    for (let i = 1; i < previews.length; i++) expect(previews[i]! - previews[i - 1]!).toBeGreaterThanOrEqual(3_500)
    expect(stack.telegram.callsFor(chatId, "sendMessageDraft")).toEqual([])
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual([answer])
    // A reply to the question, with a Stop button while it streamed, none once done.
    expect(stack.telegram.messages(chatId)[0]!.reply_to_message_id).toBe(1)
    expect(calls.slice(0, -1).every((c) => JSON.stringify(c.params["reply_markup"] ?? "").includes("stop:"))).toBe(true)
    expect(stack.telegram.messages(chatId)[0]!.reply_markup).toBeUndefined()
  })

  it("keeps the bot's sends and edits to about 30 a second across all chats", async () => {
    const chats = Array.from({ length: 40 }, (_, i) => 1100 + i)
    await Promise.all(chats.map((chatId) => send(stack, chatId, "burst")))
    for (const chatId of chats) await finalMessage(stack, chatId, (m) => m.text === "Echo: burst")
    const times = stack.telegram.calls
      .filter((c) => c.method === "sendMessage" || c.method === "editMessageText" || c.method === "sendMessageDraft")
      .map((c) => c.at)
      .sort((a, b) => a - b)
    expect(times.length).toBeGreaterThanOrEqual(40)
    // Spaced 1/30 s apart when sent (the exact spacing is SendPacer.test.ts's, on virtual time).
    // Unpaced, the 80 or so calls land within a few hundred ms; paced, they span over 2.6 s.
    // Load can only delay calls: half a second of slack covers a first call that arrived late.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual((times.length - 1) * 1000 / 30 - 500)
  })

  it("records the answer, model, tokens and latency of each turn", async () => {
    const chatId = 809
    const updateId = await send(stack, chatId, "measure me")
    await waitForStatus(stack, updateId, "answered")
    const row = stack.query(`
      select m.answer, u.model, u.tokens_in > 0, u.tokens_out > 0, u.latency_ms >= 0, u.ttft_ms <= u.latency_ms, u.outcome
      from messages m join usage u on u.message_id = m.id where m.update_id = ${updateId}`)
    expect(row).toBe("Echo: measure me|gpt-test|t|t|t|t|answered")
  })
})

describe("chat turns with tight limits", () => {
  let stack: Stack
  const question = (i: number) => `question number ${i} ` + "x".repeat(60)
  beforeAll(async () => {
    // Room for the system prompt, the new message and exactly two earlier exchanges, counted as
    // the bot counts for its model (gpt-test: not OpenAI's, so conservatively).
    const count = await tokenCounter("gpt-test")
    const exchange = (i: number) => count(question(i)) + count(`Echo: ${question(i)}`)
    const promptBudget = count(systemPrompt) + count(question(9)) + exchange(1) * 2 + 5
    stack = await startStack({
      env: { MAX_ANSWER_TOKENS: "100", CONTEXT_TOKEN_BUDGET: String(promptBudget + 100), RATE_LIMIT_LLM_PER_MINUTE: "8" }
    })
  })
  afterAll(() => stack.stop())

  it("trims the context to the token budget, dropping the oldest exchanges whole", async () => {
    const chatId = 901
    for (let i = 1; i <= 5; i++) {
      await send(stack, chatId, question(i))
      await finalMessage(stack, chatId, (m) => m.text === `Echo: ${question(i)}`)
    }
    const last = stack.openai.requests.at(-1)!.body
    expect(userContents(last)).toEqual([
      `system:${systemPrompt}`,
      `user:${question(3)}`,
      `assistant:Echo: ${question(3)}`,
      `user:${question(4)}`,
      `assistant:Echo: ${question(4)}`,
      `user:${question(5)}`
    ])
    expect(last.max_completion_tokens).toBe(100)
    // Not OpenAI's server: max_tokens too, which most OpenAI-compatible servers only know.
    expect(last.max_tokens).toBe(100)
  })

  it("cuts an answer from a server that ignores the token limit (8 UTF-16 units a token at most)", async () => {
    const chatId = 905
    stack.openai.setReply(() => ({ text: "endless ".repeat(2_000), chunkSize: 400 }))
    try {
      const updateId = await send(stack, chatId, "talk forever")
      await waitForStatus(stack, updateId, "answered", 20_000)
      const answer = stack.query(`select answer from messages where update_id = ${updateId}`)
      expect(answer.length).toBeGreaterThan(790) // 800, the trailing space trimmed by the query's output
      expect(answer.length).toBeLessThanOrEqual(800)
      expect(stack.telegram.messages(chatId).map((m) => m.text).join("")).toBe(answer.trimEnd())
      // Cut before the server's usage report: the bot's own count is recorded, for the caps.
      expect(stack.query(`select u.tokens_out >= 100 from usage u join messages m on m.id = u.message_id where m.update_id = ${updateId}`)).toBe("t")
    } finally {
      stack.resetFakes()
    }
  })

  it("answers the first message past the LLM rate limit with a notice saying when to try again, then stays silent; no LLM call", async () => {
    const chatId = 902
    const ids: Array<number> = []
    for (let i = 0; i < 12; i++) ids.push(await send(stack, chatId, `burst ${i}`))
    // Every message ends answered or skipped (the last one processed means all were: one chat, in order).
    const finished = () => stack.query(`select count(*) from messages where chat_id = ${chatId} and status in ('answered', 'skipped')`)
    const deadline = Date.now() + 30_000
    while (finished() !== "12" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    const llmCalls = stack.openai.requests.filter((r) => userContents(r.body).at(-1)!.startsWith("user:burst"))
    const texts = stack.telegram.messages(chatId).map((m) => m.text)
    const notices = texts.filter((t) => t.startsWith("You can send me 8 messages a minute. Please try again in "))
    const skipped = Number(stack.query(`select count(*) from messages where chat_id = ${chatId} and status = 'skipped' and gate = 'rate_limited'`))
    // 8 within the limit; past it one notice, then silence. (The limit's window slides by
    // weighting the previous minute: a slow run crossing a minute may let one more through.)
    expect(llmCalls.length).toBeGreaterThanOrEqual(8)
    expect(notices).toHaveLength(1)
    expect(llmCalls.length + notices.length + skipped).toBe(12)
    expect(texts.filter((t) => t.startsWith("Echo: burst"))).toHaveLength(llmCalls.length)
    for (const notice of notices) {
      const seconds = Number(/try again in (\d+) second/.exec(notice)![1])
      expect(seconds).toBeGreaterThanOrEqual(1)
      expect(seconds).toBeLessThanOrEqual(120)
    }
    // Refused turns do not use up the daily quota.
    expect(stack.query(`select messages from usage_daily where user_id = ${chatId}`)).toBe(String(llmCalls.length))
  })
})

describe("spend caps (issue 9)", () => {
  it("records each turn's cost, and past the user's daily tokens answers once with a notice, never asking the LLM", async () => {
    const stack = await startStack({ env: { LLM_PRICE_INPUT_PER_MTOK: "0.15", LLM_PRICE_OUTPUT_PER_MTOK: "0.6", USER_DAILY_TOKENS: "50" } })
    try {
      const chatId = 1101
      const first = await send(stack, chatId, "spend some tokens, please")
      await waitForStatus(stack, first, "answered")
      const [tokensIn, tokensOut, cost] = stack.query(`
        select u.tokens_in, u.tokens_out, u.cost_micro_cents from usage u join messages m on m.id = u.message_id
        where m.update_id = ${first}`).split("|").map(Number)
      // USD per million tokens -> micro-cents (1e-8 USD): tokens x price x 100.
      expect(cost).toBe(Math.round(tokensIn! * 0.15 * 100 + tokensOut! * 0.6 * 100))
      expect(cost).toBeGreaterThan(0)
      expect(tokensIn! + tokensOut!).toBeGreaterThanOrEqual(50) // the fake counts 4 characters a token
      const told = await send(stack, chatId, "and more")
      await waitForStatus(stack, told, "answered")
      const silent = await send(stack, chatId, "and more again")
      await waitForStatus(stack, silent, "skipped")
      expect(stack.telegram.messages(chatId).at(-1)?.text).toBe("You've used today's share of the assistant. It starts again at midnight (UTC time).")
      expect(stack.openai.requests).toHaveLength(1)
      expect(stack.query(`select string_agg(gate, ',' order by id) from messages where chat_id = ${chatId}`)).toBe("llm,token_cap,token_cap")
      // Refused turns use no quota.
      expect(stack.query(`select messages from usage_daily where user_id = ${chatId}`)).toBe("1")
      await waitForMetric(stack, /llm_spend_cap_hits_total\{[^}]*cap="user"[^}]*\} (\d+)/, (n) => n === 2)
    } finally {
      await stack.stop()
    }
  })

  it("past the day's spend limit, no message reaches the LLM", async () => {
    const stack = await startStack({ env: { LLM_PRICE_INPUT_PER_MTOK: "1000000", LLM_PRICE_OUTPUT_PER_MTOK: "1000000", DAILY_SPEND_LIMIT_USD: "1" } })
    try {
      // One turn costs far more than 1 USD at these prices: everyone after it is refused.
      await waitForStatus(stack, await send(stack, 1102, "an expensive question"), "answered")
      const other = await send(stack, 1103, "and another person's")
      await waitForStatus(stack, other, "answered")
      expect(stack.telegram.messages(1103).at(-1)?.text).toBe("The assistant has reached its budget for today. Please try again tomorrow.")
      expect(stack.openai.requests).toHaveLength(1)
      expect(stack.query(`select gate from messages where update_id = ${other}`)).toBe("spend_cap")
    } finally {
      await stack.stop()
    }
  })
})

describe("the updates-per-minute limit", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { RATE_LIMIT_UPDATES_PER_MINUTE: "8" } })
  })
  afterAll(() => stack.stop())

  it("says slow down once past it, then stays silent, without asking the LLM", async () => {
    const chatId = 904
    const ids: Array<number> = []
    for (let i = 0; i < 11; i++) ids.push(await send(stack, chatId, `flood ${i}`))
    for (const id of ids.slice(0, 9)) await waitForStatus(stack, id, "answered", 20_000)
    for (const id of ids.slice(9)) await waitForStatus(stack, id, "skipped", 20_000)
    const texts = stack.telegram.messages(chatId).map((m) => m.text)
    expect(texts.filter((t) => t.startsWith("Echo: flood"))).toHaveLength(8)
    expect(texts.filter((t) => t.startsWith("You're sending messages too fast"))).toHaveLength(1)
    expect(stack.openai.requests).toHaveLength(8)
  })

  it("does not count Telegram's redeliveries of an update against the sender's limit", async () => {
    const chatId = 903
    const first = { update_id: nextUpdateId++, ...textMessageUpdate({ chatId, userId: chatId, text: "once" }) }
    for (let i = 0; i < 10; i++) expect((await stack.post(first)).status).toBe(200)
    const ids = [first.update_id]
    for (let i = 0; i < 7; i++) ids.push(await send(stack, chatId, `distinct ${i}`))
    for (const id of ids) await waitForStatus(stack, id, "answered", 20_000)
    // 8 distinct messages within the limit of 8: all answered by the LLM, none with the notice.
    expect(stack.telegram.messages(chatId).filter((m) => m.text.startsWith("You're sending messages too fast"))).toEqual([])
    expect(stack.query(`select count(*) from messages where chat_id = ${chatId} and over_limit`)).toBe("0")
  })
})

describe("interrupting a turn", () => {
  it("cancels the OpenAI request and hands the message back to the mailbox", async () => {
    const stack = await startStack()
    stack.openai.failNext({ hang: true })
    const chatId = 1001
    const updateId = await send(stack, chatId, "this will hang")
    await stack.openai.waitFor((o) => o.requests.length === 1, 10_000)
    const status = () => stack.query(`select status from messages where update_id = ${updateId}`)
    expect(status()).toBe("processing")
    // Stop the program (as on SIGTERM) but keep the database to look at it afterwards.
    const openai = stack.openai
    await stack.stopProgram()
    expect(openai.requests[0]!.aborted).toBe(true)
    expect(status()).toBe("queued")
    await stack.stop()
  })
})
