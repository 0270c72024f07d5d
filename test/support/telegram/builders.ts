/**
 * Builders of incoming updates, for `pushUpdate` or for posting to the bot's webhook.
 */
import { nowSeconds } from "./protocol.ts"
import type { NewUpdate } from "./types.ts"

export interface TextUpdateOptions {
  readonly chatId: number
  readonly text: string
  /** Defaults to chatId (a private chat). */
  readonly userId?: number
  readonly messageId?: number
  readonly firstName?: string
  readonly updateId?: number
  /** Makes it a group chat with this title (give a negative chatId and a userId). */
  readonly groupTitle?: string
}

/** A text message update (private chat unless groupTitle is set), for `pushUpdate` or the webhook. */
export function textMessageUpdate(opts: TextUpdateOptions): NewUpdate {
  const userId = opts.userId ?? opts.chatId
  const firstName = opts.firstName ?? "Tester"
  return {
    ...(opts.updateId === undefined ? {} : { update_id: opts.updateId }),
    message: {
      message_id: opts.messageId ?? 1,
      date: nowSeconds(),
      chat: opts.groupTitle === undefined
        ? { id: opts.chatId, type: "private", first_name: firstName }
        : { id: opts.chatId, type: "group", title: opts.groupTitle },
      from: { id: userId, is_bot: false, first_name: firstName },
      text: opts.text
    }
  }
}
