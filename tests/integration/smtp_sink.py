#!/usr/bin/env python3
"""The relay host behind the fixture Dovecot's submission service: a loopback SMTP server that
accepts every message and stores it, so tests can check what a client sent through mailring
and Dovecot arrived byte for byte.

    smtp_sink.py PORT DIR    listen on 127.0.0.1:PORT; message N (from 1) goes to DIR/N.eml,
                             its envelope to DIR/N.env ("MAIL FROM" line, then one line per
                             recipient); runs until killed.

Python's smtpd (standard library up to 3.11, Debian 12's python3) is enough for a sink; nothing
here is part of mailring.
"""
import asyncore
import os
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import smtpd  # noqa: E402  (after the filter: importing it warns)


class Sink(smtpd.SMTPServer):
    def __init__(self, port, directory):
        super().__init__(("127.0.0.1", port), None, decode_data=False)
        self.directory = directory
        self.count = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml.tmp", "wb") as message:
            message.write(data)
        with open(base + ".env", "w") as envelope:
            envelope.write("\n".join([mailfrom] + list(rcpttos)) + "\n")
        os.rename(base + ".eml.tmp", base + ".eml")  # complete files only
        return None


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: smtp_sink.py PORT DIR")
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    Sink(port, directory)
    asyncore.loop(timeout=1)


if __name__ == "__main__":
    main()
