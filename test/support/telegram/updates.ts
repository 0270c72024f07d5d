/**
 * The "getting updates" side of the Bot API: the queue of updates waiting for the bot, served by
 * long-polling getUpdates, and the webhook settings (stored only: the fake never calls the
 * webhook, tests post updates to the bot themselves).
 */
import type { Update } from "grammy/types"
import type { ChangeNotifier } from "../LoopbackServer.ts"
import { badRequest, optionalInt, type Params, TelegramError } from "./protocol.ts"
import type { NewUpdate, WebhookState } from "./types.ts"

export class UpdateQueue {
  readonly #changes: ChangeNotifier
  readonly #maxPollMs: number
  readonly #isClosed: () => boolean
  #updates: Array<Update> = []
  #nextUpdateId = 1
  #webhook: WebhookState | undefined

  /** `isClosed` ends pending long polls once the server stops. */
  constructor(changes: ChangeNotifier, maxPollMs: number, isClosed: () => boolean) {
    this.#changes = changes
    this.#maxPollMs = maxPollMs
    this.#isClosed = isClosed
  }

  get webhook(): WebhookState | undefined {
    return this.#webhook
  }

  push(update: NewUpdate): Update {
    const update_id = update.update_id ?? this.#nextUpdateId
    this.#nextUpdateId = Math.max(this.#nextUpdateId, update_id + 1)
    const full: Update = { ...update, update_id }
    this.#updates.push(full)
    return full
  }

  pending(): ReadonlyArray<Update> {
    return [...this.#updates]
  }

  reset(): void {
    this.#updates = []
    this.#nextUpdateId = 1
    this.#webhook = undefined
  }

  /** Refuses what Telegram refuses: a URL that is not https, or a port it does not call. */
  setWebhook(p: Params): true {
    const url = typeof p["url"] === "string" ? p["url"] : ""
    if (url !== "") {
      const parsed = URL.canParse(url) ? new URL(url) : undefined
      if (parsed?.protocol !== "https:") throw badRequest("bad webhook: An HTTPS URL must be provided for webhook")
      if (!["", "80", "88", "443", "8443"].includes(parsed.port)) {
        throw badRequest("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
      }
    }
    if (p["drop_pending_updates"] === true) this.#updates = []
    this.#webhook =
      url === ""
        ? undefined
        : {
            url,
            secret_token: typeof p["secret_token"] === "string" ? p["secret_token"] : undefined,
            allowed_updates: p["allowed_updates"],
            max_connections: typeof p["max_connections"] === "number" ? p["max_connections"] : undefined
          }
    return true
  }

  deleteWebhook(p: Params): true {
    this.#webhook = undefined
    if (p["drop_pending_updates"] === true) this.#updates = []
    return true
  }

  getWebhookInfo() {
    return {
      url: this.#webhook?.url ?? "",
      has_custom_certificate: false,
      pending_update_count: this.#updates.length,
      ...(this.#webhook?.max_connections === undefined ? {} : { max_connections: this.#webhook.max_connections })
    }
  }

  async getUpdates(p: Params, signal: AbortSignal): Promise<Array<Update>> {
    if (this.#webhook !== undefined) {
      throw new TelegramError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
      )
    }
    const offset = optionalInt(p, "offset") ?? 0
    const limit = Math.min(Math.max(optionalInt(p, "limit") ?? 100, 1), 100)
    const timeoutMs = Math.min(Math.max(optionalInt(p, "timeout") ?? 0, 0) * 1000, this.#maxPollMs)
    // Like Telegram: an offset confirms (and forgets) every earlier update; a negative one keeps the last -offset.
    if (offset > 0) this.#updates = this.#updates.filter((u) => u.update_id >= offset)
    if (offset < 0) this.#updates = this.#updates.slice(offset)

    const deadline = Date.now() + timeoutMs
    while (this.#updates.length === 0 && !this.#isClosed() && !signal.aborted) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) break
      await this.#changes.next(remaining, signal)
    }
    return this.#updates.slice(0, limit)
  }
}
