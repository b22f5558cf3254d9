//! Messages from other shards: publishes to deliver locally (plain, or to one member of a
//! shared subscription), route-table and shared-member updates, retained-message storage,
//! queries and replies.

use super::Shard;
use crate::ids::ShardId;
use crate::shard_msg::ShardMsg;

impl Shard {
    /// Handles one message sent by shard `from`.
    pub fn handle_shard_msg(&mut self, now_ms: u64, from: ShardId, msg: ShardMsg) {
        match msg {
            ShardMsg::Publish(m) => {
                self.deliver_local(now_ms, &m, None);
            }
            ShardMsg::PublishCredited(m) => {
                self.deliver_local(now_ms, &m, None);
                self.credit.owe(from);
            }
            ShardMsg::Credit { n } => self.credit.returned(from, n),
            ShardMsg::PublishConfirm { msg, conn, token } => {
                let (accepted, refused) = self.deliver_local(now_ms, &msg, None);
                self.outbox.push(
                    from,
                    ShardMsg::Delivered {
                        conn,
                        token,
                        accepted,
                        refused,
                    },
                );
            }
            ShardMsg::Delivered {
                conn,
                token,
                accepted,
                refused,
            } => self.ack_delivered(now_ms, conn, token, accepted, refused),
            ShardMsg::SharedSet {
                group,
                filter,
                members,
                token,
            } => {
                self.apply_shared_set(&group, &filter, from, members);
                if let Some(token) = token {
                    self.outbox.push(from, ShardMsg::RouteAck { token });
                }
            }
            ShardMsg::SharedPublish(d) => {
                if d.credited {
                    self.credit.owe(from);
                }
                self.dispatch_shared(now_ms, *d);
            }
            ShardMsg::RouteAdd { filter, token } => {
                self.routes.add(&filter, from);
                self.outbox.push(from, ShardMsg::RouteAck { token });
            }
            ShardMsg::RouteRemove { filter } => self.routes.remove(&filter, from),
            ShardMsg::Throttle { conn, pause } => self.throttle_conn(now_ms, conn, pause),
            ShardMsg::RouteAck { token } => self.route_acked(now_ms, token),
            ShardMsg::Retain(m) => self.apply_retained(m),
            ShardMsg::RetainedQuery {
                filter,
                session,
                granted,
                sub_id,
            } => {
                let messages = self.local_retained(now_ms, &filter);
                if !messages.is_empty() {
                    self.outbox.push(
                        from,
                        ShardMsg::RetainedReply {
                            filter,
                            session,
                            granted,
                            sub_id,
                            messages,
                        },
                    );
                }
            }
            ShardMsg::RetainedReply {
                filter,
                session,
                granted,
                sub_id,
                messages,
            } => {
                self.deliver_retained(now_ms, session, &filter, granted, sub_id, messages);
            }
        }
    }
}
