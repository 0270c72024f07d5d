/**
 * The bot's command menus (setMyCommands / getMyCommands), one list per scope and language,
 * validated the way the Bot API does.
 */
import type { BotCommand, BotCommandScope } from "grammy/types"
import { badRequest, normalizeChatId, type Params } from "./protocol.ts"

const MAX_COMMANDS = 100
const MAX_COMMAND_LENGTH = 32
const MAX_DESCRIPTION_LENGTH = 256

/** One key per scope (its chat ids normalised) and language; "" is the default language. */
function menuKey(scope: unknown, languageCode: unknown): string {
  if (languageCode !== undefined && (typeof languageCode !== "string" || !/^([a-z]{2})?$/.test(languageCode))) {
    throw badRequest("invalid language code specified")
  }
  const s = typeof scope === "object" && scope !== null ? (scope as Params) : {}
  const chatId = normalizeChatId(s["chat_id"]) ?? null
  return JSON.stringify([s["type"] ?? "default", chatId, s["user_id"] ?? null, languageCode ?? ""])
}

/** Like Telegram: both are trimmed, a leading "/" is dropped; lengths count characters. */
function validCommand(value: unknown): BotCommand {
  const c = typeof value === "object" && value !== null ? (value as Params) : {}
  const command = String(c["command"] ?? "").trim().replace(/^\//, "")
  const description = String(c["description"] ?? "").trim()
  if (command === "") throw badRequest("command must be non-empty")
  if ([...command].length > MAX_COMMAND_LENGTH) throw badRequest(`command length must not exceed ${MAX_COMMAND_LENGTH}`)
  if (description === "") throw badRequest("command description must be non-empty")
  if ([...description].length > MAX_DESCRIPTION_LENGTH) {
    throw badRequest(`command description length must not exceed ${MAX_DESCRIPTION_LENGTH}`)
  }
  if (!/^[a-z0-9_]+$/.test(command)) throw badRequest("BOT_COMMAND_INVALID")
  return { command, description }
}

export class CommandMenus {
  readonly #menus = new Map<string, ReadonlyArray<BotCommand>>()

  clear(): void {
    this.#menus.clear()
  }

  setMyCommands(p: Params): true {
    const commands = p["commands"] ?? []
    if (!Array.isArray(commands)) throw badRequest("can't parse commands JSON object")
    const key = menuKey(p["scope"], p["language_code"])
    const menu = commands.map(validCommand)
    if (menu.length > MAX_COMMANDS) throw badRequest("BOT_COMMANDS_TOO_MUCH")
    this.#menus.set(key, menu)
    return true
  }

  getMyCommands(p: Params): ReadonlyArray<BotCommand> {
    return this.#menus.get(menuKey(p["scope"], p["language_code"])) ?? []
  }

  /** The stored list, or undefined when it was never set. */
  commands(languageCode: string, scope: BotCommandScope | undefined): ReadonlyArray<BotCommand> | undefined {
    return this.#menus.get(menuKey(scope, languageCode))
  }
}
