import { ConfigProvider, Context, Effect, Layer, Option } from "effect"
import * as AiMemory from "../../src/layers/llm/AiMemory.ts"
import * as TelegramMemory from "../../src/layers/telegram/TelegramMemory.ts"
import { Bursts } from "../../src/services/chat/Bursts.ts"
import { ChatMigration } from "../../src/services/chat/ChatMigration.ts"
import { ChatTurn } from "../../src/services/chat/ChatTurn.ts"
import { Stops } from "../../src/services/chat/Stops.ts"
import { Conversations } from "../../src/services/chat/Conversations.ts"
import { Delivery } from "../../src/services/chat/Delivery.ts"
import { LlmReply } from "../../src/services/chat/LlmReply.ts"
import { TurnStarts } from "../../src/services/chat/TurnStarts.ts"
import { Spend } from "../../src/services/llm/Spend.ts"
import { Tokenizer } from "../../src/services/llm/Tokenizer.ts"
import { GroupAdmins } from "../../src/services/telegram/GroupAdmins.ts"
import { type Gate, type Mail, Mailbox, type TurnRecord } from "../../src/services/chat/Mailbox.ts"
import { type Admitted, Admission } from "../../src/services/chat/Admission.ts"
import { BillingReplies } from "../../src/services/billing/BillingReplies.ts"
import { ReplyWriter } from "../../src/services/chat/ReplyWriter.ts"
import type { Exchange } from "../../src/services/llm/Prompt.ts"
import { AppConfig } from "../../src/services/platform/AppConfig.ts"
import { SendBudget } from "../../src/services/telegram/SendBudget.ts"

/** What the turn asked of the mailbox and the conversations, in order. */
export type StoreEvent =
  | { readonly _tag: "recordReplyIds"; readonly messageId: number; readonly ids: ReadonlyArray<number> }
  | { readonly _tag: "complete"; readonly messageId: number; readonly record: TurnRecord }
  | { readonly _tag: "fail"; readonly messageId: number; readonly error: string; readonly record: TurnRecord | undefined }
  | { readonly _tag: "release"; readonly messageId: number; readonly countAttempt: boolean; readonly answered: TurnRecord | undefined }
  | { readonly _tag: "markUnreachable"; readonly chatId: number; readonly reason: string }
  | { readonly _tag: "startNew"; readonly chatId: number }
  | { readonly _tag: "decide"; readonly messageId: number; readonly gate: Gate }
  | { readonly _tag: "skip"; readonly messageId: number; readonly reason: string }
  | { readonly _tag: "move"; readonly chatId: number; readonly toChatId: number }

/** The stores' side of a turn, recorded; `history` is what Conversations.history answers. */
export class Stores extends Context.Service<Stores, {
  readonly events: Array<StoreEvent>
  history: ReadonlyArray<Exchange>
  /** What Admission answers for the next messages (default: to the LLM). */
  admitted: Admitted
  /** The notices (gates) Mailbox.toldAlready says were given already. */
  readonly toldAlready: Set<Gate>
  /** What Mailbox.toldTextOnly answers. */
  toldTextOnly: boolean
  /** Messages whose answer the user asked to stop (what Stops.requested answers). */
  readonly stopRequested: Set<number>
}>()("test/Stores") {}

const notUsed = Effect.die("not used by ChatTurn")

/** Mailbox and Conversations in memory: they record what the turn asked and always succeed. */
const stores = Layer.effectContext(Effect.sync(() => {
  const state = Stores.of({
    events: [],
    history: [],
    admitted: { _tag: "Llm" },
    toldAlready: new Set(),
    toldTextOnly: false,
    stopRequested: new Set()
  })
  const record = (event: StoreEvent) => Effect.sync(() => void state.events.push(event))
  const mailbox = Mailbox.of({
    claimNext: () => notUsed,
    hasPending: () => notUsed,
    stalledChats: () => notUsed,
    recordReplyIds: (mail, ids) => record({ _tag: "recordReplyIds", messageId: mail.id, ids: [...ids] }),
    complete: (mail, turn) => record({ _tag: "complete", messageId: mail.id, record: turn }),
    fail: (mail, error, turn) => record({ _tag: "fail", messageId: mail.id, error, record: Option.getOrUndefined(turn) }),
    release: (mail, options) =>
      record({ _tag: "release", messageId: mail.id, countAttempt: options.countAttempt, answered: options.answered }),
    markUnreachable: (chatId, reason) => record({ _tag: "markUnreachable", chatId, reason }),
    decide: (mail, gate) => record({ _tag: "decide", messageId: mail.id, gate }),
    skip: (mail, reason) => record({ _tag: "skip", messageId: mail.id, reason }),
    toldAlready: (_mail, gates) => Effect.sync(() => gates.some((gate) => state.toldAlready.has(gate))),
    toldTextOnly: () => Effect.sync(() => state.toldTextOnly),
    // No burst in memory: bursts are tested on Postgres.
    claimFollower: () => Effect.succeed(Option.none()),
    merge: () => notUsed
  })
  const stops = Stops.of({
    fromDraft: () => notUsed,
    fromButton: () => notUsed,
    // Looked for once a second, as Stops does.
    awaitStop: (mailId) =>
      Effect.gen(function*() {
        do yield* Effect.sleep("1 second")
        while (!state.stopRequested.has(mailId))
      })
  })
  const migration = ChatMigration.of({ move: (chatId, toChatId) => record({ _tag: "move", chatId, toChatId }), finishWaiting: notUsed })
  // Admission's and the billing replies' own rules are tested with their storage; here they answer as told.
  const admission = Admission.of({ admit: () => Effect.sync(() => state.admitted) })
  const billing = BillingReplies.of({
    subscribe: () => Effect.succeed({ text: "subscribe here", buttons: [{ text: "Subscribe", url: "https://pay.example/checkout" }] }),
    account: (userId) => Effect.succeed({ text: `account of ${userId}`, buttons: [] }),
    paywall: (_, limit) => Effect.succeed({ text: `paywall after ${limit}`, buttons: [{ text: "Subscribe", url: "https://pay.example/checkout" }] })
  })
  const conversations = Conversations.of({
    recall: ({ chatId, threadId }) =>
      Effect.sync(() => ({ conversationId: `conversation-${chatId}${threadId === null ? "" : `-${threadId}`}`, history: state.history })),
    startNew: (chatId) => record({ _tag: "startNew", chatId }).pipe(Effect.as(`conversation-${chatId}-new`)),
    sender: (userId) => Effect.succeed(userId === null ? null : { id: userId, name: `User ${userId}` })
  })
  return Context.make(Mailbox, mailbox).pipe(
    Context.add(Conversations, conversations),
    Context.add(Admission, admission),
    Context.add(BillingReplies, billing),
    Context.add(Stops, stops),
    Context.add(ChatMigration, migration),
    Context.add(Stores, state)
  )
}))

/** Settings of the turn tests: a 10 s turn limit and a small token budget. */
export const settings = {
  TELEGRAM_BOT_TOKEN: "123:test-token",
  OPENAI_API_KEY: "sk-test",
  TURN_TIMEOUT_SECONDS: "10",
  CONTEXT_TOKEN_BUDGET: "1000",
  MAX_ANSWER_TOKENS: "200"
}

/** ChatTurn with its real collaborators, on in-memory Telegram, LLM and stores. */
export const chatTurnLayer = ChatTurn.layer.pipe(
  Layer.provide(Layer.mergeAll(ReplyWriter.layer, Delivery.layer, LlmReply.layer, Bursts.layer, GroupAdmins.layerTest, TurnStarts.layer)),
  Layer.provideMerge(Layer.mergeAll(TelegramMemory.layer, AiMemory.layer, SendBudget.layerTest(Number.POSITIVE_INFINITY, { chatLimits: false }), Tokenizer.layer, Spend.layerTest, stores)),
  Layer.provideMerge(AppConfig.layer),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(settings)))
)

let nextMailId = 1

/** A message as the mailbox hands it to a turn: a private chat's first attempt unless told. */
export const mail = (fields: Partial<Mail> & { readonly chatId: number; readonly text: string }): Mail => {
  const id = nextMailId++
  return {
    id,
    kind: "user",
    updateId: id,
    chatType: "private",
    threadId: null,
    userId: fields.chatId,
    attachment: null,
    mediaGroupId: null,
    replyTo: 1000 + id,
    lastId: id,
    lastSentAt: 0,
    lastReceivedAt: 0,
    buttons: [],
    overLimit: false,
    gate: null,
    attempts: 1,
    replyMessageIds: [],
    pendingAnswer: null,
    conversationId: null,
    trace: null,
    laterPending: false,
    ...fields
  }
}
