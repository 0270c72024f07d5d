import { readFileSync } from "node:fs"

const dir = new URL("../fixtures/telegram/", import.meta.url)

/** A real Telegram update from test/fixtures/telegram (copied from shared/fixtures, see SOURCES.md). */
export const telegramFixture = (name: string): Record<string, unknown> & { update_id: number } =>
  JSON.parse(readFileSync(new URL(`${name}.json`, dir), "utf8"))
