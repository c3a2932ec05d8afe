"""gsmbridge: a standalone daemon between a serial GSM modem and RapidSMS."""

__version__ = "0.1.0"
