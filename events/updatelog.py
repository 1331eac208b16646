"""The durable per-account update log: seqs allocated with the account's counters, updates stored,
replayed by keyset, redacted and pruned. It owns the log's SQL, derived from the models.

Nothing here opens a transaction: every method that writes runs inside the writer's (events/writes.py).
"""
import itertools

from peewee import fn

from models import Account, Statement, Update, db, new_ids, now_ms, postgres
from schemas import to_json

# What a deleted session's updates become: the seq stays (replay has no gap), the content goes.
REDACTED = '{"t":"redacted"}'
_MAX_SEQ = (1 << 63) - 1


def update_frame(update_id, seq, body_text, created_at):
    """The `update` frame around a body already encoded (as stored in the log): encoded once, sent as is."""
    return (f'{{"event":"update","data":{{"id":"{update_id}","seq":{int(seq)},'
            f'"body":{body_text},"createdAt":{int(created_at)}}}}}')


# Run by every write: rendered once (per database) and then run with new values, as Peewee's
# rendering of them cost more than running them (bench/append.py).
ALLOCATE = Statement(lambda count, sessions, stored_bytes, account_id: (
    Account
    .update({Account.seq: Account.seq + count,
             Account.session_count: Account.session_count + sessions,
             Account.stored_bytes: Account.stored_bytes + stored_bytes})
    .where(Account.id == account_id)
    .returning(Account.seq, Account.session_count, Account.stored_bytes)), 1001, 1002, 1003, 1004)
_UPDATE_COLUMNS = (Update.id, Update.account, Update.seq, Update.session_id, Update.body, Update.created_at)
INSERT = Statement(lambda *row: Update.insert_many([row], fields=_UPDATE_COLUMNS).returning(),
                   "u", 1001, 1002, "s", "{}", 1003)
INSERT_STEP_ROWS = 500  # 3,000 values a statement, well within SQLite's and PostgreSQL's limits


class UpdateLog:
    @staticmethod
    def allocate(account_id, count, sessions, stored_bytes):
        """Take `count` seqs of the account and change its counters by the deltas, in one statement
        that holds the account's row until commit (so seqs are allocated in commit order); returns
        (last seq, sessions, stored_bytes) as they now are."""
        [row] = db.execute_sql(*ALLOCATE(count, sessions, stored_bytes, account_id)).fetchall()
        return row

    @staticmethod
    def append(account_id, last_seq, bodies):
        """Store `bodies` ((session id, body) pairs) with the seqs ending at `last_seq`; returns their
        (seq, session id, frame) in seq order, for publication once committed."""
        created_at = now_ms()
        rows, published = [], []
        first = last_seq - len(bodies) + 1
        for seq, (session_id, body), update_id in zip(itertools.count(first), bodies, new_ids(len(bodies))):
            body_text = to_json(body)
            rows.append((update_id, account_id, seq, session_id, body_text, created_at))
            published.append((seq, session_id, update_frame(update_id, seq, body_text, created_at)))
        # Many rows to a statement, as messages are written (domain._insert_messages): a third cheaper
        # than executemany's statement per row.
        INSERT.write(rows, INSERT_STEP_ROWS)
        return published

    def replay(self, account_id, since, page_rows=500, page_bytes=1 << 20):
        """(pages, latest): the frames of every update after `since` up to the latest seq, as an
        iterator of pages; pages is None when the log no longer reaches back that far.

        Each page (page_rows rows, or page_bytes of bodies) is read on a pooled connection held only
        while reading it, by keyset on (account, seq): a connection holds one page, however long the
        log, and no read transaction stays open while a slow peer takes the frames."""
        latest = Account.get_by_id(account_id).seq
        if since > latest:
            return None, latest
        first = self.first_seq(account_id)
        if since < latest and (first is None or first > since + 1):
            return None, latest
        return self._pages(account_id, since, latest, page_rows, page_bytes), latest

    @staticmethod
    def first_seq(account_id):
        """The oldest seq the log still holds for the account (retention prunes the rest), or None."""
        return (Update
                .select(Update.seq)
                .where(Update.account == account_id)
                .order_by(Update.seq)
                .limit(1)
                .scalar())

    @staticmethod
    def page(account_id, after, latest, limit):
        """The query of one replay page: the account's updates in (after, latest], by seq."""
        return (Update
                .select(Update.id, Update.seq, Update.session_id, Update.body, Update.created_at)
                .where((Update.account == account_id) & (Update.seq > after) & (Update.seq <= latest))
                .order_by(Update.seq)
                .limit(limit))

    @staticmethod
    def _within_bytes(page, page_bytes):
        """`page` up to the row whose body reaches page_bytes, for PostgreSQL: psycopg fetches every row
        of a statement at once (500 rows of 100 KB held 50 MB per replay), where SQLite's cursor reads
        them as _pages asks. The sizes come from the rows' headers: no body is read to count it."""
        size = fn.octet_length(Update.body)
        ranked = page.select_extend((fn.SUM(size).over(order_by=[Update.seq]) - size).alias("before")).alias("page")
        return (Update
                .select(ranked.c.id, ranked.c.seq, ranked.c.session_id, ranked.c.body, ranked.c.created_at)
                .from_(ranked)
                .where(ranked.c.before < page_bytes)
                .order_by(ranked.c.seq))

    def _pages(self, account_id, after, latest, page_rows, page_bytes):
        while after < latest:
            page, size = [], 0
            query = self.page(account_id, after, latest, page_rows)
            if postgres():
                query = self._within_bytes(query, page_bytes)
            with db.connection_context():
                cursor = db.execute(query)
                try:
                    for uid, seq, session_id, body, created_at in cursor:
                        page.append((seq, session_id, update_frame(uid, seq, body, created_at)))
                        size += len(body)
                        if size >= page_bytes:
                            break
                finally:
                    cursor.close()  # ends the read transaction, even after a break
            if not page:
                return
            yield page
            after = page[-1][0]

    @staticmethod
    def redact_session(session_id):
        """The query that redacts a deleted session's updates (found by the update_session_id index)."""
        return (Update
                .update(body=REDACTED)
                .where((Update.session_id == session_id) & (Update.body != REDACTED)))

    @staticmethod
    def redact_range(account_id, after, upto):
        """The query that redacts the account's session updates with seq in (after, upto]: a step of
        a delete-all, which walks the whole log by its primary key."""
        return (Update
                .update(body=REDACTED)
                .where((Update.account == account_id) & (Update.seq > after) & (Update.seq <= upto)
                       & Update.session_id.is_null(False) & (Update.body != REDACTED)))

    @staticmethod
    def prune(account_id, older_than_ms):
        """The query that deletes the account's updates older than `older_than_ms`. An account's log in
        seq order is in time order too: the rows below its first recent one are exactly the old
        ones, found by the primary key without reading the rest of the log."""
        first_recent = (Update
                        .select(Update.seq)
                        .where((Update.account == account_id) & (Update.created_at >= older_than_ms))
                        .order_by(Update.seq)
                        .limit(1))
        return (Update
                .delete()
                .where((Update.account == account_id) & (Update.seq < fn.COALESCE(first_recent, _MAX_SEQ))))
