// peer.ts — Rust devices in a browser test: drives e2e-tests' `chat_peer` binary (the crypto
// crate natively, through kitsulan-client) over JSON lines, so a conversation holds browsers
// (the crate as WebAssembly) and Rust clients at once. See e2e-tests/src/bin/chat_peer.rs.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const targetDir = process.env.CARGO_TARGET_DIR ?? join(process.cwd(), "../target");

/** One message of a conversation as a Rust device read it. */
export interface PeerMessage {
  id: string;
  sender_account_id: string;
  sender_device_id: string;
  session_id: string;
  edited: boolean;
  text?: string;
  undecryptable?: string;
  deleted?: boolean;
  system?: number;
}

export class ChatPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly answers: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  private stderr = "";

  constructor() {
    this.child = spawn(join(targetDir, "debug/chat_peer"), [], { stdio: ["pipe", "pipe", "pipe"] });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const w = this.waiting;
      if (w) {
        this.waiting = null;
        w(line);
      } else this.answers.push(line);
    });
    this.child.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
  }

  /** Runs one command; throws with the peer's error. */
  async run<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
    const line = this.answers.shift() ?? (await new Promise<string>((resolve) => (this.waiting = resolve)));
    const answer = JSON.parse(line) as { ok?: T; error?: string };
    if (answer.error !== undefined) throw new Error(`chat_peer ${String(command.cmd)}: ${answer.error}\n${this.stderr}`);
    return answer.ok as T;
  }

  /** The conversation's history as device `as` reads it now. */
  async history(as: string, conversationId: string): Promise<PeerMessage[]> {
    return (await this.run<{ messages: PeerMessage[] }>({ cmd: "history", as, conversation_id: conversationId })).messages;
  }

  /** Polls the history until `predicate` holds (or throws after `timeoutMs`). */
  async waitFor(
    as: string,
    conversationId: string,
    predicate: (messages: PeerMessage[]) => boolean,
    timeoutMs = 15_000,
  ): Promise<PeerMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const messages = await this.history(as, conversationId);
      if (predicate(messages)) return messages;
      if (Date.now() > deadline) {
        throw new Error(`${as}: timed out; history: ${JSON.stringify(messages, null, 1)}`);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** The id of the conversation titled `title` that device `as` is in (waits for it). */
  async conversationTitled(as: string, title: string, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { conversations } = await this.run<{ conversations: Array<{ id: string; title: string }> }>({
        cmd: "conversations",
        as,
      });
      const found = conversations.find((c) => c.title === title);
      if (found) return found.id;
      if (Date.now() > deadline) throw new Error(`${as} is in no conversation titled ${title}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  close(): void {
    this.child.stdin.end();
  }
}
