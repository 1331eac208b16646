"""Durable changes and their delivery, in three parts: the writer (events/writes.py) runs every write
in a transaction it owns, the update log (events/updatelog.py) stores, replays and prunes what each write
records, and the hub (events/pubsub.py) publishes it to this process's subscribers once committed.
"""
from events.pubsub import Hub, QuotaExceeded, Subscriber, Watcher, frame
from events.updatelog import REDACTED, UpdateLog, update_frame
from events.writes import Busy, Changes, Quotas, Writer

hub = Hub()
update_log = UpdateLog()
writer = Writer(update_log, hub)

__all__ = ["REDACTED", "Busy", "Changes", "Hub", "QuotaExceeded", "Quotas", "Subscriber", "UpdateLog", "Watcher",
           "Writer", "frame", "hub", "update_frame", "update_log", "writer"]
