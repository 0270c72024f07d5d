import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const workerMain = fileURLToPath(new URL("../../src/main/worker.ts", import.meta.url))

/** The worker program in its own Node process, so a test can kill it like a crash or a deploy. */
export class WorkerProcess {
  readonly #child: ChildProcess
  readonly exited: Promise<number | null>
  output = ""

  constructor(env: Readonly<Record<string, string>>) {
    this.#child = spawn(process.execPath, [workerMain], {
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
