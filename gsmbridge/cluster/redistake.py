"""Taking from Redis without a window in which a message can vanish.

kombu consumes from Redis with BRPOP, which removes the message from its list when Redis hands
it over; kombu records it as unacknowledged (so that it comes back after the visibility
timeout) only once it has read Redis's answer. A consumer that dies while a BRPOP of its waits
on the server (most of the time, for a consumer that waits for work) loses the message Redis
hands to it in the milliseconds the dying process's socket stays open, and after a power cut
until Redis notices the connection is gone (tests/test_broker.py shows the loss; measured here:
every message pushed within 1 ms of a SIGKILL, half of those within 5 ms).

So the Redis side of `Consumer` takes with LMOVE instead: one command moves the message from
its queue into this consumer's own list, ``gsmbridge.taking.<id>``, where it stays until the
handler has committed it (then LREM). Nothing is ever handed to a client that is not there to
read it: a client sends LMOVE only when it is ready, and if it dies after that the message is
in its list. A consumer proves it lives with a key, ``gsmbridge.taker.<id>``, that expires after
the Broker's visibility_timeout; any consumer that finds a taking list whose owner's key is gone
puts its messages back on their queues (one Lua script, atomically). Messages on the lists keep
kombu's own format (kombu's Publisher pushes them), so the queues stay kombu queues.

Waiting: a consumer with nothing to take waits (BLPOP) on the bells of its queues,
``gsmbridge.bell.<queue>``, short lists where the Publisher pushes a ring after each message:
each ring wakes one waiting consumer, not all of them. A ring is only a wake-up: one that goes
to a consumer that is dying, or that no one waits for, costs at most WAKE_EVERY seconds, as
every consumer looks at its queues that often anyway. A bell keeps its last BELL_SIZE rings.
"""

import base64
import secrets
import time

TAKING = "gsmbridge.taking."
ALIVE = "gsmbridge.taker."
BELL = "gsmbridge.bell."
BELL_SIZE = 16
#: how often a waiting consumer looks at its queues without being woken
WAKE_EVERY = 0.5


def ring(client, queue):
    """After a push to `queue`: wake one consumer waiting for it (one round trip)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.lpush(BELL + queue, "1")
        pipe.ltrim(BELL + queue, 0, BELL_SIZE - 1)
        pipe.execute()

#: moves up to ARGV[1] messages of the first queue that has any (KEYS[2..], in order) into the
#: taking list (KEYS[1]); returns queue, message, queue, message, ... (one round trip)
TAKE = """
local out = {}
local limit = tonumber(ARGV[1])
for i = 2, #KEYS do
  while #out < limit * 2 do
    local item = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not item then break end
    out[#out + 1] = KEYS[i]
    out[#out + 1] = item
  end
  if #out > 0 then break end
end
return out
"""

#: puts a dead consumer's messages back on their queues (KEYS: its list, its key)
RESTORE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = 0
while true do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  local ok, message = pcall(cjson.decode, item)
  local queue = nil
  if ok and type(message) == 'table' and type(message.properties) == 'table'
      and type(message.properties.delivery_info) == 'table' then
    queue = message.properties.delivery_info.routing_key
  end
  if type(queue) ~= 'string' or queue == '' then
    queue = ARGV[1]
  else
    message.properties.delivery_info.redelivered = true
    item = cjson.encode(message)
  end
  redis.call('RPUSH', queue, item)
  n = n + 1
end
return n
"""


class Item:
    """A message taken from a Redis queue: kombu's payload, and what the Consumer needs."""

    __slots__ = ("raw", "queue", "body", "content_type", "headers", "properties", "payload")

    def __init__(self, raw, queue, payload):
        self.raw = raw
        self.queue = queue
        self.payload = payload
        self.properties = payload.get("properties") or {}
        self.headers = payload.get("headers") or {}
        self.content_type = payload.get("content-type")
        body = payload.get("body")
        if self.properties.get("body_encoding") == "base64" and isinstance(body, str):
            body = base64.b64decode(body)
        elif isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        self.body = body

    @property
    def redelivered(self):
        info = self.properties.get("delivery_info")
        return bool(isinstance(info, dict) and info.get("redelivered"))

    def redelivered_raw(self):
        """The payload again, marked as handed out before (as kombu marks what it restores)."""
        import json

        info = self.properties.get("delivery_info")
        if not isinstance(info, dict) or "properties" not in self.payload:
            return self.raw
        return json.dumps(dict(self.payload, properties=dict(
            self.properties, delivery_info=dict(info, redelivered=True))))


class RedisTaker:
    """Takes from Redis lists for one Consumer (see the module docstring). Not thread-safe:
    one thread, as the Consumer."""

    def __init__(self, broker, queues, *, dead_queue):
        self.broker = broker
        self.queues = list(queues)
        self.dead_queue = dead_queue
        self.id = "%s.%s" % (broker.node, secrets.token_hex(6))
        self.taking = TAKING + self.id
        self.alive = ALIVE + self.id
        self.ttl = max(2, int(round(broker.visibility_timeout)))
        self._client = None
        self._bells = []
        self._restore = None
        self._alive_at = 0.0
        self._swept_at = 0.0

    # -- the connection ---------------------------------------------------------------------

    def open(self, timeout, declare=None):
        """Connect; `declare()` first (the queues' bindings, made through kombu)."""
        if self._client is not None:
            return
        import redis

        url = self.broker.current_url()
        client = redis.Redis.from_url(url, socket_timeout=self.broker.timeout,
                                      socket_connect_timeout=max(0.05, timeout))
        try:
            client.ping()
            if declare is not None:
                declare()
        except Exception:
            client.close()
            raise
        self._client = client
        self._bells = [BELL + queue for queue in self.queues]
        self._take = client.register_script(TAKE)
        self._restore = client.register_script(RESTORE)
        self._alive_at = 0.0

    def close(self, clean=True):
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if clean:
                # nothing should be left here; what is goes back now, not after the timeout
                client.delete(self.alive)
                client.register_script(RESTORE)(keys=[self.taking, self.alive],
                                                args=[self.dead_queue])
        except Exception:
            pass
        try:
            client.close()
        except Exception:
            pass

    @property
    def connected(self):
        return self._client is not None

    # -- taking ---------------------------------------------------------------------------------

    def take(self, deadline, limit=1):
        """Up to `limit` messages moved to this consumer's list, as Items; [] if none came by
        the deadline. Waits on wake-ups in between looks."""
        while True:
            self._live()
            items = self._look(limit)
            if items:
                return items
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._wait(min(left, WAKE_EVERY))

    def gather(self, items, limit):
        """More of what is there now, up to `limit` in all."""
        if len(items) < limit:
            items.extend(self._look(limit - len(items)))
        return items

    def _look(self, limit):
        """What the first of this consumer's queues that has work holds, up to `limit`,
        moved into its taking list (the others wait their turn)."""
        found = self._take(keys=[self.taking, *self.queues], args=[limit])
        items = []
        for index in range(0, len(found or ()), 2):
            queue = found[index]
            queue = queue.decode() if isinstance(queue, bytes) else queue
            items.append(self._item(found[index + 1], queue))
        self._sweep()
        return items

    @staticmethod
    def _item(raw, queue):
        import json

        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            payload = {"body": raw if isinstance(raw, bytes) else str(raw).encode(),
                       "content-type": "application/octet-stream"}
        return Item(raw, queue, payload)

    def _wait(self, seconds):
        """Until a ring on one of this consumer's bells, or `seconds` (at least 10 ms)."""
        self._client.blpop(self._bells, timeout=max(0.01, round(seconds, 3)))

    # -- settling -------------------------------------------------------------------------------

    def ack(self, item):
        self._client.lrem(self.taking, 1, item.raw)

    def give_back(self, item):
        """Back on its queue, next to be taken, marked as handed out before."""
        with self._client.pipeline() as pipe:
            pipe.rpush(item.queue, item.redelivered_raw())
            pipe.lrem(self.taking, 1, item.raw)
            pipe.execute()

    def bury(self, item):
        with self._client.pipeline() as pipe:
            pipe.lpush(self.dead_queue, item.raw)
            pipe.lrem(self.taking, 1, item.raw)
            pipe.execute()

    # -- liveness and the dead ------------------------------------------------------------------

    def _live(self):
        now = time.monotonic()
        if now - self._alive_at >= self.ttl / 3.0:
            self._client.set(self.alive, "1", ex=self.ttl)
            self._alive_at = now

    def _sweep(self):
        """Now and then: put back what consumers that died had taken."""
        now = time.monotonic()
        if now - self._swept_at < min(5.0, self.ttl / 2.0):
            return
        self._swept_at = now
        for key in self._client.scan_iter(match=TAKING + "*", count=100):
            key = key.decode() if isinstance(key, bytes) else key
            if key == self.taking:
                continue
            owner = ALIVE + key[len(TAKING):]
            restored = self._restore(keys=[key, owner], args=[self.dead_queue])
            if restored and restored > 0:
                from .broker import log

                log.warning("broker %s: %d message(s) taken by a consumer that is gone "
                            "(%s) are back on their queues", self.broker.safe_url, restored,
                            key[len(TAKING):])
