"""A real SMTP server on a loopback port for the alert tests (aiosmtpd).

Usage: smtp_sink.py PORT DIR. Writes each received message to DIR/NNNN.eml
(the envelope recipients first, as `X-Envelope-To:` lines) and, before it,
the decoded subject, text/plain and text/html parts as DIR/NNNN.subject,
DIR/NNNN.txt and DIR/NNNN.html
(what a mail reader shows and what its links are), prints `ready`
once listening, and stops when standard input closes.
"""

import email
import email.policy
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:04d}.eml")
        content = envelope.original_content or envelope.content
        message = email.message_from_bytes(content, policy=email.policy.default)
        with open(os.path.join(self.directory, f"{self.count:04d}.subject"), "w") as out:
            out.write(str(message["subject"]))
        for part in message.walk():
            ext = {"text/plain": "txt", "text/html": "html"}.get(part.get_content_type())
            if ext:
                with open(os.path.join(self.directory, f"{self.count:04d}.{ext}"), "w") as out:
                    out.write(part.get_content())
        with open(path + ".tmp", "wb") as out:
            for rcpt in envelope.rcpt_tos:
                out.write(f"X-Envelope-To: {rcpt}\r\n".encode())
            out.write(content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
