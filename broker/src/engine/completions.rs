//! Routes each completion of the shard's ring to the part of the engine that asked for it.

use super::ctx::Ctx;
use super::ring::Completion;
use super::sockets::{split, Op};
use super::tables::Sock;
use std::rc::Rc;

/// Handles completion `c` reaped from the ring of table `table`.
pub fn dispatch(ctx: &Rc<Ctx>, table: u16, c: Completion) {
    let (op, a, b) = split(c.data);
    let sock = Sock { table, file: b };
    match op {
        Some(Op::Accept) => super::accept::on_accept(ctx, table, a as usize, &c),
        Some(Op::ListenPoll) => super::accept::on_listen_poll(ctx, a as usize),
        Some(Op::Recv) => super::conn::on_recv(ctx, sock, a, c),
        Some(Op::Send) => super::flush::on_send(ctx, b, c.res),
        Some(Op::HandoffOut) => super::handoff::on_sent(ctx, b, c.res),
        Some(Op::HandoffIn) => super::handoff::on_arrived(ctx, table, a, b, c.res),
        Some(Op::PeerName) => super::peer::on_answer(ctx, b, c.res),
        Some(Op::Quiet) | None => {
            // A receive that ended without its owner knowing still holds a buffer.
            if let Some(bid) = c.buffer() {
                ctx.tables.get(table).ring.give_back(bid);
            }
        }
    }
}
