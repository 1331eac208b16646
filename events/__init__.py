"""Durable changes and their delivery, in three parts: the writer (events/writes.py) runs every write
in a transaction it owns, the update log (events/updatelog.py) stores, replays and prunes what each write
records, and the hub (events/pubsub.py) publishes it to this process's subscribers once committed.
On PostgreSQL, the follower (events/follower.py) publishes from the log what any process committed.
"""
from events.follower import Follower
from events.pubsub import Hub, QuotaExceeded, Subscriber, Watcher, frame
from events.updatelog import REDACTED, UpdateLog, update_frame
from events.writes import Busy, Changes, Quotas, Writer

hub = Hub()
update_log = UpdateLog()
writer = Writer(update_log, hub)
follower = Follower(hub)

__all__ = ["REDACTED", "Busy", "Changes", "Follower", "Hub", "QuotaExceeded", "Quotas", "Subscriber", "UpdateLog", "Watcher",
           "Writer", "follower", "frame", "hub", "update_frame", "update_log", "writer"]
