-- Events waiting to be published on the broker (`micro.events.<type>`),
-- written in the same transaction as the change that caused them and deleted
-- by the relay once the broker acknowledged them. `seq` is the publishing
-- order.
CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX outbox_by_user ON outbox (user_id);
