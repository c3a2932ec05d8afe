"""A RapidSMS app that answers every message with "echo: " and its text.

RapidSMS finds it as ``<app>.app`` and calls handle() for each incoming message;
msg.respond() queues the reply, which the blocking router sends through the
backend the message came in on once the phases are done.
"""

from rapidsms.apps.base import AppBase


class EchoApp(AppBase):
    def handle(self, msg):
        msg.respond("echo: " + msg.text)
        return True
