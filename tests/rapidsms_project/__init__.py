"""A minimal RapidSMS 2.2.0 project used as the far end in gsmbridge's end-to-end test.

Everything in it is stock RapidSMS except the ``echo`` app. Its settings come from
environment variables so the test can point it at a bridge started on a free port.
"""
