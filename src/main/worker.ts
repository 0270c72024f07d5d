import { WorkerProgram } from "../layers/Programs.ts"
import { runProgram } from "./run.ts"

runProgram(WorkerProgram)
