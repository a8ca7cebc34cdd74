"""A real SMTP server for KitsuLAN's end-to-end tests (testkit/src/smtp.rs starts it).

It listens on 127.0.0.1 on a port the OS picks, prints {"listening": PORT} once ready, then
prints every message it accepts as one JSON line on stdout:
{"mail_from", "rcpt_tos", "from", "to", "subject", "body"}, where body is the text/plain part,
decoded. It stops when its standard input closes (the test process went away).

Needs aiosmtpd (`pip install aiosmtpd`).
"""

import asyncio
import email
import email.policy
import json
import sys

try:
    from aiosmtpd.smtp import SMTP
except ImportError:
    sys.stderr.write(
        "aiosmtpd is not installed: the e2e tests need it for their SMTP sink "
        "(`pip install aiosmtpd`)\n"
    )
    sys.exit(3)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message.get("from", "")),
            "to": str(message.get("to", "")),
            "subject": str(message.get("subject", "")),
            "body": body,
        }
        print(json.dumps(record), flush=True)
        return "250 Message accepted for delivery"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.kitsulan.test"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"listening": port}), flush=True)
    # Stop when the test process closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
