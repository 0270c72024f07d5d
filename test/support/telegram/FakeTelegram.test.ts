/**
 * Self-tests of the fake Telegram server, driven through the real client (grammY's Api).
 */
import { Api, GrammyError } from "grammy"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import {
  callbackQueryUpdate,
  type FakeTelegram,
  type MediaKind,
  mediaMessageUpdate,
  migrationUpdate,
  startFakeTelegram,
  stoppedGenerationUpdate,
  textMessageUpdate
} from "./FakeTelegram.ts"

const CHAT = 1001
const OTHER_CHAT = 1002
const SUPERGROUP = -1_001_234_567_890
const GROUP = -4001

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

  it("stores command menus per language and scope and validates them like Telegram", async () => {
    expect(tg.commands()).toBeUndefined()
    expect(await api.getMyCommands()).toEqual([])
    const menu = [
      { command: "start", description: "Start" },
      { command: "new_chat", description: "Forget the conversation" }
    ]
    await api.setMyCommands(menu)
    await api.setMyCommands([{ command: "start", description: "Los" }], { language_code: "de" })
    await api.setMyCommands([{ command: "help", description: "Help" }], { scope: { type: "all_group_chats" } })
    expect(tg.commands()).toEqual(menu)
    expect(tg.commands("de")).toEqual([{ command: "start", description: "Los" }])
    expect(tg.commands("", { type: "all_group_chats" })).toEqual([{ command: "help", description: "Help" }])
    expect(tg.commands("fr")).toBeUndefined()
    expect(await api.getMyCommands({ language_code: "de" })).toEqual([{ command: "start", description: "Los" }])
    expect(await api.getMyCommands()).toEqual(menu)

    const rejected = async (commands: Array<{ command: string; description: string }>) =>
      (await grammyError(api.setMyCommands(commands))).description
    expect(await rejected([{ command: "NewChat", description: "x" }])).toBe("Bad Request: BOT_COMMAND_INVALID")
    expect(await rejected([{ command: "new-chat", description: "x" }])).toBe("Bad Request: BOT_COMMAND_INVALID")
    expect(await rejected([{ command: "", description: "x" }])).toBe("Bad Request: command must be non-empty")
    expect(await rejected([{ command: "a".repeat(33), description: "x" }])).toBe(
      "Bad Request: command length must not exceed 32"
    )
    expect(await rejected([{ command: "a", description: " " }])).toBe("Bad Request: command description must be non-empty")
    expect(await rejected([{ command: "a", description: "d".repeat(257) }])).toBe(
      "Bad Request: command description length must not exceed 256"
    )
    const tooMany = Array.from({ length: 101 }, (_, i) => ({ command: `c${i}`, description: "d" }))
    expect(await rejected(tooMany)).toBe("Bad Request: BOT_COMMANDS_TOO_MUCH")
    await api.setMyCommands(tooMany.slice(0, 100).map((c) => ({ ...c, description: "d".repeat(256) })))
    expect(tg.commands()).toHaveLength(100)

    tg.reset()
    expect(tg.commands()).toBeUndefined()
  })

  it("answers callback queries with a non-empty id", async () => {
    expect(await api.answerCallbackQuery("4382bfdwdsb323b2d9", { text: "Saved", show_alert: true })).toBe(true)
    expect(tg.calls.find((c) => c.method === "answerCallbackQuery")?.params).toEqual({
      callback_query_id: "4382bfdwdsb323b2d9",
      text: "Saved",
      show_alert: true
    })
    const error = await grammyError(api.answerCallbackQuery(""))
    expect(error.error_code).toBe(400)
    expect(error.description).toBe("Bad Request: query is too old and response timeout expired or query ID is invalid")
  })

  it("keeps message_thread_id and checks it against a forum's topics", async () => {
    tg.makeForum(SUPERGROUP, [5, 9])
    const sent = await api.sendMessage(SUPERGROUP, "in topic", { message_thread_id: 5 })
    expect(sent).toMatchObject({
      message_thread_id: 5,
      is_topic_message: true,
      chat: { type: "supergroup", is_forum: true }
    })
    expect(tg.lastMessage(SUPERGROUP)?.message_thread_id).toBe(5)
    await api.sendChatAction(SUPERGROUP, "typing", { message_thread_id: 9 })
    // General: no thread id.
    const general = await api.sendMessage(SUPERGROUP, "general")
    expect(general.message_thread_id).toBeUndefined()
    expect(tg.lastMessage(SUPERGROUP)?.message_thread_id).toBeUndefined()

    for (const call of [
      api.sendMessage(SUPERGROUP, "lost", { message_thread_id: 6 }),
      api.sendChatAction(SUPERGROUP, "typing", { message_thread_id: 6 })
    ]) {
      expect((await grammyError(call)).description).toBe("Bad Request: message thread not found")
    }
    expect(tg.messages(SUPERGROUP)).toHaveLength(2)

    // A private chat with topics: drafts and actions are checked too.
    tg.makeForum(CHAT, [3])
    await api.sendMessageDraft(CHAT, 1, "thinking", { message_thread_id: 3 })
    expect(tg.drafts(CHAT)).toMatchObject([{ draft_id: 1, message_thread_id: 3 }])
    expect((await grammyError(api.sendMessageDraft(CHAT, 2, "x", { message_thread_id: 4 }))).description).toBe(
      "Bad Request: message thread not found"
    )
    const inPrivateTopic = await api.sendMessage(CHAT, "answer", { message_thread_id: 3 })
    expect(inPrivateTopic.chat).toEqual({ id: CHAT, type: "private", first_name: "Tester" })

    // Without makeForum any thread id is accepted.
    const elsewhere = await api.sendMessage(OTHER_CHAT, "x", { message_thread_id: 77 })
    expect(elsewhere.chat.is_forum).toBeUndefined()
    expect(tg.lastMessage(OTHER_CHAT)?.message_thread_id).toBe(77)

    tg.reset()
    await api.sendMessage(SUPERGROUP, "forgotten", { message_thread_id: 6 })
  })

  it("keeps the replied-to message id from reply_parameters or reply_to_message_id", async () => {
    await api.sendMessage(CHAT, "reply", { reply_parameters: { message_id: 41, allow_sending_without_reply: true } })
    expect(tg.lastMessage(CHAT)?.reply_to_message_id).toBe(41)
    await api.raw.sendMessage({ chat_id: CHAT, text: "legacy", reply_to_message_id: 42 })
    expect(tg.lastMessage(CHAT)?.reply_to_message_id).toBe(42)
    await api.sendMessage(CHAT, "plain")
    expect(tg.lastMessage(CHAT)?.reply_to_message_id).toBeUndefined()
  })

  it("keeps a draft's can_stop and keep_on_stop", async () => {
    await api.sendMessageDraft(CHAT, 1, "plain")
    await api.sendMessageDraft(CHAT, 2, "stoppable", { can_stop: true, keep_on_stop: true })
    expect(tg.drafts(CHAT)).toMatchObject([
      { draft_id: 1, can_stop: false, keep_on_stop: false, message_thread_id: undefined },
      { draft_id: 2, can_stop: true, keep_on_stop: true }
    ])
  })

  it("rejects callback_data that is not 1-64 bytes of UTF-8, on send and on edit", async () => {
    const keyboard = (data: string) => ({
      inline_keyboard: [[{ text: "ok", callback_data: "ok" }, { text: "b", callback_data: data }]]
    })
    const sent = await api.sendMessage(CHAT, "pick", { reply_markup: keyboard("é".repeat(32)) }) // 64 bytes
    expect(tg.lastMessage(CHAT)?.reply_markup).toEqual(keyboard("é".repeat(32)))
    for (const data of ["é".repeat(32) + "x", ""]) {
      expect((await grammyError(api.sendMessage(CHAT, "pick", { reply_markup: keyboard(data) }))).description).toBe(
        "Bad Request: BUTTON_DATA_INVALID"
      )
      const edit = api.editMessageText(CHAT, sent.message_id, "again", { reply_markup: keyboard(data) })
      expect((await grammyError(edit)).description).toBe("Bad Request: BUTTON_DATA_INVALID")
    }
    expect(tg.messages(CHAT)).toMatchObject([{ text: "pick", edit_count: 0 }])
    // URL buttons carry no callback_data.
    await api.sendMessage(CHAT, "link", { reply_markup: { inline_keyboard: [[{ text: "site", url: "https://e.com" }]] } })
  })

  it("answers every chat method to a migrated group with 400 and migrate_to_chat_id", async () => {
    const sent = await api.sendMessage(GROUP, "before")
    tg.migrateChat(GROUP, SUPERGROUP)
    for (const call of [
      api.sendMessage(GROUP, "after"),
      api.editMessageText(GROUP, sent.message_id, "edited"),
      api.sendMessageDraft(GROUP, 1, "draft"),
      api.sendChatAction(GROUP, "typing"),
      api.deleteMessage(GROUP, sent.message_id)
    ]) {
      const error = await grammyError(call)
      expect(error.error_code).toBe(400)
      expect(error.description).toBe("Bad Request: group chat was upgraded to a supergroup chat")
      expect(error.parameters).toEqual({ migrate_to_chat_id: SUPERGROUP })
    }
    expect((await api.sendMessage(SUPERGROUP, "moved")).chat.type).toBe("supergroup")
    expect(tg.messages(GROUP)).toMatchObject([{ text: "before" }])

    tg.reset()
    await api.sendMessage(GROUP, "forgotten")
  })

  it("builds text updates in topics, groups and replies to the bot", async () => {
    const mention = { type: "mention" as const, offset: 0, length: 14 }
    const command = { type: "bot_command" as const, offset: 0, length: 4 }
    for (const update of [
      textMessageUpdate({ chatId: CHAT, text: "hi" }),
      textMessageUpdate({ chatId: GROUP, userId: 7, groupTitle: "Team", text: "hello" }),
      textMessageUpdate({ chatId: SUPERGROUP, userId: 7, isForum: true, threadId: 5, text: "@fake_test_bot hi", entities: [mention] }),
      textMessageUpdate({
        chatId: SUPERGROUP,
        userId: 7,
        chatType: "supergroup",
        replyToBot: { messageId: 3, text: "earlier" },
        botToken: tg.token,
        text: "more"
      }),
      textMessageUpdate({ chatId: CHAT, threadId: 2, text: "/new", entities: [command] })
    ]) {
      tg.pushUpdate(update)
    }
    const updates = await api.getUpdates({ timeout: 0 })
    const [privateText, groupText, topicText, replyText, privateTopicText] = updates.map((u) => u.message)
    expect(privateText).toMatchObject({ chat: { id: CHAT, type: "private" }, from: { id: CHAT, is_bot: false }, text: "hi" })
    expect(privateText?.message_thread_id).toBeUndefined()
    expect(privateText?.reply_to_message).toBeUndefined()
    expect(groupText).toMatchObject({ chat: { id: GROUP, type: "group", title: "Team" }, from: { id: 7 } })
    expect(topicText).toMatchObject({
      chat: { id: SUPERGROUP, type: "supergroup", is_forum: true },
      message_thread_id: 5,
      is_topic_message: true,
      entities: [mention],
      // Telegram makes a topic's messages replies to the topic's creation message.
      reply_to_message: { message_id: 5, forum_topic_created: { name: "Test topic" } }
    })
    expect(replyText?.chat).toEqual({ id: SUPERGROUP, type: "supergroup", title: "Test supergroup" })
    expect(replyText?.reply_to_message).toMatchObject({
      message_id: 3,
      text: "earlier",
      from: { id: 42, is_bot: true, username: "fake_test_bot" }
    })
    // A reply in a supergroup belongs to the reply thread, which is not a topic.
    expect(replyText?.message_thread_id).toBe(3)
    expect(replyText?.is_topic_message).toBeUndefined()
    expect(privateTopicText).toMatchObject({ message_thread_id: 2, is_topic_message: true, chat: { type: "private" } })
    expect(privateTopicText?.reply_to_message).toBeUndefined()
    expect(() => textMessageUpdate({ chatId: GROUP, chatType: "group", isForum: true, text: "x" })).toThrow(/supergroup/)
  })

  it("builds media messages of every kind", async () => {
    const kinds: Array<MediaKind> = [
      "photo",
      "video",
      "document",
      "voice",
      "audio",
      "sticker",
      "video_note",
      "animation",
      "location",
      "contact",
      "poll",
      "dice"
    ]
    for (const [i, kind] of kinds.entries()) tg.pushUpdate(mediaMessageUpdate({ chatId: CHAT, messageId: i + 1, kind }))
    const messages = (await api.getUpdates({ timeout: 0 })).map((u) => u.message)
    for (const [i, kind] of kinds.entries()) {
      expect(messages[i]).toHaveProperty(kind)
      expect(messages[i]?.text).toBeUndefined()
    }
    const [photo, video, , , , sticker, , animation] = messages
    expect(photo?.photo?.map((p) => p.width)).toEqual([51, 180, 451, 721])
    expect(photo?.photo?.[0]).toMatchObject({ file_id: expect.any(String), file_unique_id: expect.any(String) })
    expect(video?.video).toMatchObject({ mime_type: "video/mp4", thumbnail: { width: 180 } })
    expect(sticker?.sticker).toMatchObject({ type: "regular", is_animated: false, emoji: "😀" })
    expect(animation?.document?.file_id).toBe(animation?.animation?.file_id)

    const album = mediaMessageUpdate({
      chatId: SUPERGROUP,
      userId: 7,
      isForum: true,
      threadId: 5,
      kind: "photo",
      caption: "@fake_test_bot look",
      captionEntities: [{ type: "mention", offset: 0, length: 14 }],
      mediaGroupId: "13443011608618786",
      updateId: 900
    })
    expect(album).toMatchObject({
      update_id: 900,
      message: {
        chat: { type: "supergroup", is_forum: true },
        message_thread_id: 5,
        is_topic_message: true,
        caption: "@fake_test_bot look",
        caption_entities: [{ type: "mention", offset: 0, length: 14 }],
        media_group_id: "13443011608618786"
      }
    })
    expect(() => mediaMessageUpdate({ chatId: CHAT, kind: "sticker", caption: "x" })).toThrow(/no caption/)
    expect(() => mediaMessageUpdate({ chatId: CHAT, kind: "voice", mediaGroupId: "1" })).toThrow(/album/)
  })

  it("builds stop-button, callback query and migration updates", async () => {
    tg.pushUpdate(stoppedGenerationUpdate({ chatId: CHAT, draftId: 7 }))
    tg.pushUpdate(stoppedGenerationUpdate({ chatId: CHAT, draftId: 8, threadId: 3, updateId: 50 }))
    tg.pushUpdate(callbackQueryUpdate({ chatId: CHAT, userId: CHAT, messageId: 4, data: "regen:4", botToken: tg.token }))
    tg.pushUpdate(callbackQueryUpdate({ chatId: GROUP, userId: 7, groupTitle: "Team", messageId: 9, data: "x", id: "q1" }))
    tg.pushUpdate(migrationUpdate({ fromChatId: GROUP, toChatId: SUPERGROUP }))
    const [stopped, stoppedInTopic, pressed, pressedInGroup, migrated] = await api.getUpdates({ timeout: 0 })

    expect(stopped?.stopped_message_generation).toEqual({
      chat: { id: CHAT, type: "private", first_name: "Tester" },
      draft_id: 7
    })
    expect(stoppedInTopic).toMatchObject({
      update_id: 50,
      stopped_message_generation: { message_thread_id: 3, draft_id: 8 }
    })

    const query = pressed?.callback_query
    expect(query).toMatchObject({
      from: { id: CHAT, is_bot: false },
      data: "regen:4",
      chat_instance: expect.any(String),
      message: { message_id: 4, chat: { id: CHAT, type: "private" }, from: { id: 42, is_bot: true } }
    })
    expect(query?.id).toEqual(expect.any(String))
    // Without botToken the bot is DEFAULT_TOKEN's.
    expect(pressedInGroup?.callback_query).toMatchObject({
      id: "q1",
      message: { chat: { id: GROUP, type: "group", title: "Team" }, from: { id: 123456 } }
    })
    await api.answerCallbackQuery(query?.id ?? "")

    expect(migrated?.message).toMatchObject({ chat: { id: GROUP, type: "group" }, migrate_to_chat_id: SUPERGROUP })
  })
})
