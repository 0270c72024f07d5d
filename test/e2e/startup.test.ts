import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ProgramProcess } from "../support/ProgramProcess.ts"
import { createDatabase, freePort, startStack } from "../support/Stack.ts"
import { startFakeTelegram } from "../support/telegram/FakeTelegram.ts"

/** The FATAL line a program that could not start wrote last, parsed. */
const fatalOf = (output: string): { level: string; error: string } =>
  JSON.parse(output.trim().split("\n").filter((line) => line.includes('"FATAL"')).at(-1) ?? "{}")

/** Waits until the program has written `text` (or fails with what it wrote). */
const waitForOutput = async (program: ProgramProcess, text: string, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!program.output.includes(text)) {
    if (Date.now() > deadline) throw new Error(`no "${text}" in: ${program.output}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("start-up checks (in process)", () => {
  const refusal = async (options: Parameters<typeof startStack>[0]) => {
    const error = await startStack(options).then(
      async (stack) => {
        await stack.stop()
        return undefined
      },
      (error: unknown) => error as Error
    )
    expect(error, "the start should fail").toBeDefined()
    return error!.message
  }

  it("stops when Telegram refuses the bot token, naming TELEGRAM_BOT_TOKEN", async () => {
    expect(await refusal({ env: { TELEGRAM_BOT_TOKEN: "999:WRONG" } })).toMatch(/^Telegram refuses TELEGRAM_BOT_TOKEN \(401 Unauthorized\)/)
  })

  it("stops when the LLM server refuses the key, naming OPENAI_API_KEY and the server", async () => {
    expect(await refusal({ env: { OPENAI_API_KEY: "sk-wrong" } })).toMatch(/^the LLM server http:\/\/127\.0\.0\.1:\d+\/v1 refuses OPENAI_API_KEY \(401\)/)
  })

  it("starts with a warning when the LLM server cannot be reached (it may come back)", async () => {
    const stack = await startStack({ env: { OPENAI_BASE_URL: "http://127.0.0.1:9/v1" } })
    await stack.stop()
  })

  it("stops when Telegram refuses the webhook URL, with Telegram's words and what to set", async () => {
    const message = await refusal({ program: "api", env: { PUBLIC_URL: "http://bot.example.com" } })
    expect(message).toContain("Telegram refuses the webhook http://bot.example.com/telegram/webhook (PUBLIC_URL): Bad Request: bad webhook: An HTTPS URL must be provided")
    expect(message).toContain("PUBLIC_URL must be an https:// address")
  })

  it("stops when PORT is in use, naming it", async () => {
    const port = await freePort()
    const holder = createServer().listen(port, "0.0.0.0")
    try {
      expect(await refusal({ env: { PORT: String(port) } })).toBe(
        `PORT ${port} is in use by another program (EADDRINUSE): stop it, or set PORT to a free port.`
      )
    } finally {
      holder.close()
    }
  })

  it("stops when the database cannot be reached, naming its address but not its password", async () => {
    const message = await refusal({ env: { DATABASE_URL: "postgres://postgres:hunter2@127.0.0.1:1/nowhere" } })
    expect(message).toBe("cannot reach the database at 127.0.0.1:1/nowhere (DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1.")
  })

  it("stops when Redis cannot be reached, naming its address but not its password", async () => {
    expect(await refusal({ env: { REDIS_URL: "redis://:hunter2@127.0.0.1:1/4" } })).toBe(
      "cannot reach Redis at 127.0.0.1:1/4 (REDIS_URL): connect ECONNREFUSED 127.0.0.1:1."
    )
  })

  it("stops when DATA_DIR is a file or cannot be written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bot-datadir-"))
    try {
      writeFileSync(join(dir, "file"), "")
      expect(await refusal({ mode: "embedded", env: { DATA_DIR: join(dir, "file") } })).toBe(
        `DATA_DIR ${join(dir, "file")} cannot hold the embedded database: it is a file, not a directory. Set DATA_DIR to a writable directory.`
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("stops when DATA_DIR holds a database folder that is not one, naming DATA_DIR", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bot-datadir-"))
    try {
      mkdirSync(join(dir, "pglite"))
      writeFileSync(join(dir, "pglite", "notes.txt"), "not a database")
      expect(await refusal({ mode: "embedded", env: { DATA_DIR: dir } })).toMatch(
        new RegExp(`^DATA_DIR ${dir}/pglite: the embedded database could not be created: .+`)
      )
      expect(existsSync(join(dir, "pglite.new")), "the half-made database is not left behind").toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("start-up checks (as an operator runs the programs)", () => {
  const dirs: Array<string> = []
  const cleanups: Array<() => void | Promise<void>> = []
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  it("refuses a second process on the same DATA_DIR, naming the first; takes over from one that crashed", async () => {
    const telegram = await startFakeTelegram()
    cleanups.push(() => telegram.close())
    const dataDir = mkdtempSync(join(tmpdir(), "bot-lock-"))
    dirs.push(dataDir)
    // What an interrupted first creation leaves: it is started afresh.
    mkdirSync(join(dataDir, "pglite.new"))
    writeFileSync(join(dataDir, "pglite.new", "PG_VERSION"), "half")
    const env = async () => ({
      TELEGRAM_BOT_TOKEN: telegram.token,
      TELEGRAM_API_ROOT: telegram.url,
      OPENAI_API_KEY: "sk-test",
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1",
      DATA_DIR: dataDir,
      PORT: String(await freePort())
    })
    const first = new ProgramProcess("all", await env())
    cleanups.push(() => first.kill("SIGKILL"))
    await waitForOutput(first, "chat worker started")
    expect(existsSync(join(dataDir, "pglite", "PG_VERSION"))).toBe(true)
    expect(existsSync(join(dataDir, "pglite.new"))).toBe(false)
    const second = new ProgramProcess("all", await env())
    expect(await second.exited).toBe(1)
    expect(fatalOf(second.output).error).toMatch(new RegExp(`^DATA_DIR ${dataDir} is in use by process \\d+: stop it, or give this one another DATA_DIR\\.$`))
    // A crash leaves the lock behind: the next start sees its holder gone and takes it.
    first.kill("SIGKILL")
    await first.exited
    const third = new ProgramProcess("all", await env())
    cleanups.push(() => third.kill("SIGKILL"))
    await waitForOutput(third, "chat worker started")
    third.kill("SIGTERM")
    expect(await third.exited).toBe(0)
  })

  it("runs `npm run migrate` with the database settings alone", async () => {
    const database = createDatabase()
    cleanups.push(() => database.drop())
    const migrate = new ProgramProcess("migrate", { DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database.name}`, LOG_LEVEL: "info" })
    expect(await migrate.exited).toBe(0)
    expect(migrate.output).toContain('"message":"migrations applied"')
  })

  it("refuses start:api without shared storage before opening anything (no embedded database made)", async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), "bot-api-")), "data")
    dirs.push(dataDir)
    const api = new ProgramProcess("api", { TELEGRAM_BOT_TOKEN: "1:x", OPENAI_API_KEY: "k", DATA_DIR: dataDir, PORT: String(await freePort()) })
    expect(await api.exited).toBe(1)
    expect(fatalOf(api.output).error).toContain("start:api and start:worker run as separate processes and need DATABASE_URL and REDIS_URL")
    expect(api.output).not.toContain("embedded Postgres")
    expect(() => rmSync(dataDir)).toThrow(/ENOENT/)
  })
})
