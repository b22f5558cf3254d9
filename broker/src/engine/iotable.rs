//! `IoTable`: the I/O side of every connection on a shard, indexed by the shard's `ConnId`
//! slot. Grows in fixed chunks that never move (no large copies, no freed-but-resident
//! buffers as the connection count climbs).

use super::ctx::IoSlot;
use shard::ConnId;

const CHUNK: usize = 1024;

#[derive(Default)]
pub struct IoTable {
    chunks: Vec<Box<[Option<IoSlot>]>>,
    live: usize,
}

impl IoTable {
    fn cell(&mut self, slot: u32) -> Option<&mut Option<IoSlot>> {
        self.chunks
            .get_mut(slot as usize / CHUNK)?
            .get_mut(slot as usize % CHUNK)
    }

    pub fn get(&self, slot: u32) -> Option<&IoSlot> {
        self.chunks
            .get(slot as usize / CHUNK)?
            .get(slot as usize % CHUNK)?
            .as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut IoSlot> {
        self.cell(slot)?.as_mut()
    }

    /// Stores `s` at its connection's slot (replacing a stale occupant, which is closed).
    pub fn insert(&mut self, s: IoSlot) {
        let i = s.conn.slot as usize;
        while self.chunks.len() <= i / CHUNK {
            self.chunks.push((0..CHUNK).map(|_| None).collect());
        }
        if let Some(cell) = self.cell(s.conn.slot) {
            if cell.replace(s).is_none() {
                self.live += 1;
            }
        }
    }

    /// Removes the I/O side of `conn` if that slot still belongs to it.
    pub fn remove(&mut self, conn: ConnId) -> Option<IoSlot> {
        let cell = self.cell(conn.slot)?;
        if cell.as_ref().is_some_and(|x| x.conn == conn) {
            let s = cell.take();
            self.live -= 1;
            s
        } else {
            None
        }
    }

    pub fn live(&self) -> usize {
        self.live
    }
}
