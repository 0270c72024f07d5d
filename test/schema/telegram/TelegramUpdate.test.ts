import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type Audience, classify, inboundOf, type TelegramUpdate } from "../../../src/schema/telegram/TelegramUpdate.ts"
import { telegramFixture } from "../../support/fixtures.ts"
import {
  callbackQueryUpdate,
  mediaMessageUpdate,
  mentioningBot,
  migrationUpdate,
  stoppedGenerationUpdate,
  textMessageUpdate
} from "../../support/telegram/FakeTelegram.ts"

const audience: Audience = { botId: 123456, username: "fake_test_bot", commands: ["start", "help", "new"], groupReplyMode: "mention" }
const asUpdate = (update: object) => ({ update_id: 1, ...update }) as unknown as TelegramUpdate
const kindOf = (update: object, to: Audience = audience) => classify(asUpdate(update), to)._tag
const inGroup = (fields: Record<string, unknown>) => textMessageUpdate({ chatId: -9, userId: 9, groupTitle: "G", text: "", ...fields })

describe("classify", () => {
  it("in groups, takes commands for this bot or none, mentions, text_mentions and replies to the bot; ignores the rest", () => {
    assert.strictEqual(kindOf(inGroup({ text: "/help" })), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "/help@Fake_Test_Bot now" })), "Message")
    assert.strictEqual(kindOf(inGroup(mentioningBot("hi"))), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "hey", entities: [{ type: "text_mention", offset: 0, length: 3, user: { id: 123456, is_bot: true, first_name: "B" } }] })), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "why?", replyToBot: { messageId: 4 } })), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "hello all" })), "Ignored")
    assert.strictEqual(kindOf(inGroup({ text: "/new@other_bot" })), "Ignored")
    // Every bot gets every command: a bare one the bot does not have is another bot's.
    assert.strictEqual(kindOf(inGroup({ text: "/roll 2d6" })), "Ignored")
    assert.strictEqual(kindOf(inGroup({ text: "/roll@fake_test_bot" })), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "@other_bot hi", entities: [{ type: "mention", offset: 0, length: 10 }] })), "Ignored")
    // "all": every message but another bot's command.
    const all: Audience = { ...audience, groupReplyMode: "all" }
    assert.strictEqual(kindOf(inGroup({ text: "hello all" }), all), "Message")
    assert.strictEqual(kindOf(inGroup({ text: "/new@other_bot" }), all), "Ignored")
    assert.strictEqual(kindOf(inGroup({ text: "/roll" }), all), "Ignored")
    // A sticker is for the bot only as a reply to it, in either mode.
    const sticker = (fields: object) => mediaMessageUpdate({ chatId: -9, userId: 9, groupTitle: "G", kind: "sticker", ...fields })
    assert.strictEqual(kindOf(sticker({}), all), "Ignored")
    assert.strictEqual(kindOf(sticker({ replyToBot: { messageId: 4 } })), "Message")
    // A channel's post copied into its discussion group asks nothing, even in "all" mode.
    const forwarded = inGroup({ text: "channel news" }) as { message: object }
    assert.strictEqual(kindOf({ message: { ...forwarded.message, is_automatic_forward: true } }, all), "Ignored")
  })

  it("takes the bot's mention out of the question, and keeps a topic's thread (not a reply thread)", () => {
    const update = classify(asUpdate(inGroup({ ...mentioningBot("what is 2+2?"), chatType: "supergroup", isForum: true, threadId: 7 })), audience)
    assert.strictEqual(update._tag === "Message" && update.text, "what is 2+2?")
    assert.strictEqual(update._tag === "Message" && update.threadId, 7)
    const alone = classify(asUpdate(inGroup(mentioningBot(""))), audience)
    assert.strictEqual(alone._tag === "Message" && alone.text, "")
    const reply = classify(asUpdate(inGroup({ text: "so?", chatType: "supergroup", replyToBot: { messageId: 4 } })), audience)
    assert.strictEqual(reply._tag === "Message" && reply.threadId, null)
  })

  it("reads a caption as the text, and an attachment alone as an empty text with its kind", () => {
    const captioned = classify(asUpdate(mediaMessageUpdate({ chatId: 5, kind: "photo", caption: "what is it?" })), audience)
    assert.deepStrictEqual(captioned._tag === "Message" && [captioned.text, captioned.attachment], ["what is it?", "photo"])
    for (const kind of ["voice", "sticker", "video_note", "location", "contact", "poll", "dice"] as const) {
      const bare = classify(asUpdate(mediaMessageUpdate({ chatId: 5, kind })), audience)
      assert.deepStrictEqual(bare._tag === "Message" && [bare.text, bare.attachment], ["", kind], kind)
    }
    // The real fixtures: an album photo and a forwarded video.
    for (const name of ["message-private-photo-media_group-IAmIrina-filetreck_bot", "message-private-forwarded-video-IAmIrina-filetreck_bot"]) {
      assert.strictEqual(classify(telegramFixture(name) as unknown as TelegramUpdate, audience)._tag, "Message", name)
    }
  })

  it("ignores service messages and bots; knows migrations, draft stops and Stop buttons", () => {
    assert.strictEqual(classify(telegramFixture("message-group-new_chat_members-graffic-rejubot") as unknown as TelegramUpdate, audience)._tag, "Ignored")
    const fromBot = textMessageUpdate({ chatId: 5, text: "hi" }) as { message: { from: object } }
    assert.strictEqual(kindOf({ message: { ...fromBot.message, from: { id: 8, is_bot: true, first_name: "B" } } }), "Ignored")
    assert.deepStrictEqual(classify(asUpdate(migrationUpdate({ fromChatId: -1, toChatId: -1001 })), audience), {
      _tag: "Migration",
      updateId: 1,
      fromChatId: -1,
      toChatId: -1001
    })
    assert.deepStrictEqual(classify(asUpdate(stoppedGenerationUpdate({ chatId: 5, draftId: 42 })), audience), {
      _tag: "StopDraft",
      updateId: 1,
      chatId: 5,
      draftId: 42
    })
    const press = classify(asUpdate(callbackQueryUpdate({ chatId: -9, groupTitle: "G", userId: 3, messageId: 8, data: "stop:77", id: "q" })), audience)
    assert.deepStrictEqual(press, { _tag: "StopButton", updateId: 1, callbackQueryId: "q", chatId: -9, userId: 3, mailId: 77 })
    assert.strictEqual(kindOf(callbackQueryUpdate({ chatId: -9, groupTitle: "G", userId: 3, messageId: 8, data: "other" })), "Ignored")
  })
})

describe("inboundOf", () => {
  it.effect("asks for the bot's identity only for group messages", () =>
    Effect.gen(function*() {
      const unknown = Effect.die("getMe must not be asked for a private chat")
      const privateText = yield* inboundOf({ update_id: 3, ...textMessageUpdate({ chatId: 5, text: "hi" }) }, unknown)
      assert.strictEqual(Option.getOrThrow(privateText)._tag, "Message")
      const group = yield* inboundOf({ update_id: 4, ...inGroup(mentioningBot("hi")) }, Effect.succeed(audience))
      assert.strictEqual(Option.getOrThrow(group)._tag, "Message")
    }))

  it.effect("acknowledges a well-formed update of an unexpected shape as ignored, and refuses what is not an update", () =>
    Effect.gen(function*() {
      const strange = yield* inboundOf({ update_id: 5, message: { message_id: 1, date: 0, chat: { id: 1, type: "hyperchat" } } }, Effect.succeed(audience))
      assert.deepStrictEqual(Option.getOrThrow(strange), { _tag: "Ignored", updateId: 5, kind: "message", unexpected: true })
      assert.isTrue(Option.isNone(yield* inboundOf({ message: {} }, Effect.succeed(audience))))
      assert.isTrue(Option.isNone(yield* inboundOf(null, Effect.succeed(audience))))
    }))
})
