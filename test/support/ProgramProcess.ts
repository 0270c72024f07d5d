import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

/** The entry points a test can start: `npm start`'s, the API's and the worker's alone, and `npm run migrate`'s. */
const mains = {
  all: fileURLToPath(new URL("../../src/main/all.ts", import.meta.url)),
  api: fileURLToPath(new URL("../../src/main/api.ts", import.meta.url)),
  worker: fileURLToPath(new URL("../../src/main/worker.ts", import.meta.url)),
  migrate: fileURLToPath(new URL("../../src/main/migrate.ts", import.meta.url))
}

/**
 * A program in its own Node process, as an operator runs it: a test can kill it like a crash or
 * a deploy, and read everything it wrote to stdout and stderr.
 */
export class ProgramProcess {
  readonly #child: ChildProcess
  readonly exited: Promise<number | null>
  output = ""

  constructor(program: keyof typeof mains, env: Readonly<Record<string, string>>) {
    this.#child = spawn(process.execPath, [mains[program]], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    this.#child.stdout!.on("data", (chunk) => (this.output += String(chunk)))
    this.#child.stderr!.on("data", (chunk) => (this.output += String(chunk)))
    this.exited = new Promise((resolve) => this.#child.on("exit", (code) => resolve(code)))
  }

  kill(signal: NodeJS.Signals): void {
    this.#child.kill(signal)
  }
}

/** Kills each program (SIGKILL, as a crash would) and waits for it to exit; empties the list. */
export const killAll = async (programs: Array<ProgramProcess>): Promise<void> => {
  for (const program of programs.splice(0)) {
    program.kill("SIGKILL")
    await program.exited
  }
}
