// smtp.ts — a real SMTP server for the browser tests, so a spec reads one-time codes out of the
// mail a person would get: the SMTP sink of the Rust end-to-end tests (smtp_sink.py, aiosmtpd),
// run with python3 on a port the OS picks on 127.0.0.1. It prints each message it accepts as a
// JSON line ({"rcpt_tos", "subject", "body", ...}). Without python3 and aiosmtpd it fails to
// start and says so; nothing is skipped.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
/** Where the sink script lives (the shared test kit, or the e2e crate before it). */
const SCRIPTS = ["testkit/smtp_sink.py", "e2e-tests/smtp_sink.py"];

export interface Mail {
  /** The envelope recipients, lower-case. */
  to: string[];
  subject: string;
  /** The text/plain body, decoded. */
  body: string;
}

export class SmtpSink {
  private readonly inbox: Mail[] = [];
  private arrived: () => void = () => undefined;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly port: number,
  ) {}

  /** Starts the sink and waits until it listens. */
  static start(): Promise<SmtpSink> {
    const script = SCRIPTS.map((p) => join(root, p)).find((p) => existsSync(p));
    if (!script) return Promise.reject(new Error(`no SMTP sink script at ${SCRIPTS.join(" or ")}`));
    const child = spawn("python3", [script], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve, reject) => {
      let sink: SmtpSink | null = null;
      const fail = (why: string) => {
        clearTimeout(timer);
        child.kill();
        reject(new Error(`the SMTP sink (${script}) ${why}: ${stderr || "no output; is aiosmtpd installed? (pip install aiosmtpd)"}`));
      };
      const timer = setTimeout(() => fail("did not start within 20 s"), 20_000);
      child.on("error", (err) => fail(`cannot run python3 (${String(err)})`));
      child.on("exit", (code) => {
        if (!sink) fail(`exited with ${code}`);
      });
      createInterface({ input: child.stdout }).on("line", (line) => {
        const record = JSON.parse(line) as Record<string, unknown>;
        if (!sink) {
          if (typeof record.listening !== "number") return fail(`said ${line}`);
          clearTimeout(timer);
          sink = new SmtpSink(child, record.listening);
          resolve(sink);
          return;
        }
        const to = Array.isArray(record.rcpt_tos) ? record.rcpt_tos.map((r) => String(r).toLowerCase()) : [];
        sink.inbox.push({ to, subject: String(record.subject ?? ""), body: String(record.body ?? "") });
        sink.arrived();
      });
    });
  }

  /** The server's settings for plain SMTP (no TLS, no login) to this sink. */
  get serverEnv(): Record<string, string> {
    return {
      KITSULAN_SMTP_HOST: "127.0.0.1",
      KITSULAN_SMTP_PORT: String(this.port),
      KITSULAN_SMTP_TLS: "none",
      KITSULAN_SMTP_FROM: "KitsuLAN <noreply@kitsulan.test>",
    };
  }

  /** Takes the oldest mail to `to` not taken yet, waiting up to `timeoutMs` for it. */
  async waitForMail(to: string, timeoutMs = 15_000): Promise<Mail> {
    const address = to.toLowerCase();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.inbox.findIndex((m) => m.to.includes(address));
      if (index >= 0) return this.inbox.splice(index, 1)[0] as Mail;
      const left = deadline - Date.now();
      if (left <= 0) {
        const others = this.inbox.map((m) => m.to.join(","));
        throw new Error(`no mail to ${address} within ${timeoutMs} ms (untaken mail is for [${others.join("; ")}])`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.arrived = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The one-time code in the next mail to `to`: the first line of exactly six digits. */
  async code(to: string): Promise<string> {
    const mail = await this.waitForMail(to);
    const code = mail.body
      .split("\n")
      .map((l) => l.trim())
      .find((l) => /^[0-9]{6}$/.test(l));
    if (!code) throw new Error(`no 6-digit code on a line of its own in:\n${mail.body}`);
    return code;
  }

  /** Stops the sink (it exits when its standard input closes). */
  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}
