"""Prometheus metrics of the running bridge.

The counters and histograms live here, module-level, and the parts that see the events (the modem
worker, the forwarder, the delivery-report sender) update them; `/metrics` renders them. Queue depths
are not counted here: they are read from the store when scraped, so they are right across restarts.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds: an AT+CMGS round trip is 0.1 s on a fast link and up to a minute on a bad network.
_SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120)
# Seconds: a forward to RapidSMS is milliseconds when healthy, seconds when it is struggling.
_FORWARD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

RECEIVED = Counter("gsmbridge_messages_received", "SMS received from the modem and stored",
                   ["modem"], registry=REGISTRY)
SENT = Counter("gsmbridge_messages_sent", "SMS sent by the modem (all parts accepted)",
               ["modem"], registry=REGISTRY)
SEND_FAILED = Counter("gsmbridge_messages_send_failed", "SMS given up on (permanent error)",
                      ["modem"], registry=REGISTRY)
SEND_RETRIED = Counter("gsmbridge_messages_send_retried", "sends that failed and will be retried",
                       ["modem"], registry=REGISTRY)
BAD_PDUS = Counter("gsmbridge_bad_pdus", "malformed PDUs kept aside", ["modem"],
                   registry=REGISTRY)
FORWARDED = Counter("gsmbridge_messages_forwarded", "inbound SMS delivered to RapidSMS",
                    registry=REGISTRY)
FORWARD_FAILED = Counter("gsmbridge_messages_forward_failed",
                         "inbound SMS refused by RapidSMS for good (4xx)", registry=REGISTRY)
FORWARD_RETRIED = Counter("gsmbridge_messages_forward_retried",
                          "forwards that failed and will be retried", registry=REGISTRY)
SEND_SECONDS = Histogram("gsmbridge_send_seconds", "time to send one SMS, all parts",
                         ["modem"], buckets=_SEND_BUCKETS, registry=REGISTRY)
FORWARD_SECONDS = Histogram("gsmbridge_forward_seconds", "time of one HTTP forward to RapidSMS",
                            buckets=_FORWARD_BUCKETS, registry=REGISTRY)
MODEM_UP = Gauge("gsmbridge_modem_up", "1 when the modem is booted and answering", ["modem"],
                 registry=REGISTRY)
MODEM_SIGNAL = Gauge("gsmbridge_modem_signal_csq", "signal quality from AT+CSQ (0-31)",
                     ["modem"], registry=REGISTRY)
RECONNECTS = Counter("gsmbridge_modem_reconnects", "times the modem was reopened", ["modem"],
                     registry=REGISTRY)

# The SIM's services (worker/services.py). The balance itself is read from the store at scrape
# time (overview.StoreCollector), like the queue depths.
USSD = Counter("gsmbridge_ussd_requests", "USSD requests made for the HTTP API, by outcome",
               ["modem", "status"], registry=REGISTRY)
CALLS = Counter("gsmbridge_calls", "incoming voice calls (hung up at once)", ["modem"],
                registry=REGISTRY)
