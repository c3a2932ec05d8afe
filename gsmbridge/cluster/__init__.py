"""One gsmbridge service over several hosts, on a broker the deployment already runs.

Nodes talk only through the broker (RabbitMQ or Redis, through kombu), and connect out to it.
Each node's store stays the truth for what it holds: the broker carries a message from the store
of the node that accepted it to the store of the node that sends it, and status reports back.
See docs/cluster.md for the flow; this package is the broker side of it:

- `Broker` (broker.py): settings and connections; `BrokerError`, `BrokerUnavailable`;
- `Publisher` (publisher.py): publish, returning once the broker confirmed;
- `Consumer`, `Delivery` (consumer.py): take one message when free, ack after the handler;
- `Heartbeat`, `Roster` (heartbeat.py): best-effort heartbeats and the view they give;
- topology.py: exchange and queue names; envelope.py: the JSON every message is;
- urls.py: which transport a URL names and how it may be shown (`mask_url`).
"""

from .broker import Broker, BrokerError, BrokerUnavailable
from .consumer import Consumer, Delivery
from .envelope import BadMessage
from .heartbeat import Heartbeat, Roster
from .publisher import Publisher
from .topology import DEAD_QUEUE, FREE_QUEUE, modem_queue, route_queue, status_queue
from .urls import mask_url

__all__ = ["Broker", "BrokerError", "BrokerUnavailable", "Consumer", "Delivery", "BadMessage",
           "Heartbeat", "Roster", "Publisher", "DEAD_QUEUE", "FREE_QUEUE", "modem_queue",
           "route_queue", "status_queue", "mask_url"]
