"""Broker URLs: which transport a URL names, its failover list, and how it may be logged.

A broker URL carries a user name and password (``amqp://user:pass@host:5672/vhost``,
``redis://:pass@host:6379/0``); none of that may reach a log line, an exception message or a
status page. kombu accepts several URLs separated by ";" (failover: the next one is tried when a
connection fails), so every part is masked.
"""

import re
import urllib.parse

#: URL schemes per transport; others (kombu's memory://, sqs://, ...) are refused: gsmbridge is
#: tested on RabbitMQ and Redis only, and the memory transport would silently not cluster at all.
SCHEMES = {"amqp": "amqp", "amqps": "amqp", "pyamqp": "amqp", "redis": "redis", "rediss": "redis"}

# greedy up to the last "@" before the path: a password may hold an "@" that was not escaped
_USERINFO = re.compile(r"(?<=://)[^/\s;]*@")


def mask_url(text):
    """`text` with the user info of every URL in it replaced by ``***``."""
    return _USERINFO.sub("***@", str(text))


def split_urls(url):
    """The failover list: ``"amqp://a;amqp://b"`` -> ``["amqp://a", "amqp://b"]``."""
    return [part.strip() for part in str(url).split(";") if part.strip()]


def transport_of(url):
    """"amqp" or "redis" for a broker URL (or failover list); ValueError, without the URL's
    credentials, for anything else."""
    urls = split_urls(url)
    if not urls:
        raise ValueError("no broker URL given (amqp://... or redis://...)")
    kinds = set()
    for part in urls:
        scheme = urllib.parse.urlsplit(part).scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError("%s: unsupported broker URL scheme %r (use amqp:// for RabbitMQ or "
                             "redis:// for Redis)" % (mask_url(part), scheme))
        kinds.add(SCHEMES[scheme])
    if len(kinds) > 1:
        raise ValueError("%s: a failover list must name one kind of broker" % mask_url(url))
    return kinds.pop()
