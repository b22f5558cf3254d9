//! A generational slab: dense storage with stable `(slot, gen)` keys.
//!
//! A key whose slot has been freed and reused carries an older generation and finds
//! nothing, so timers and cross-shard replies that outlive their target are harmless.
//!
//! Storage grows in fixed chunks of `CHUNK` entries and never moves: at a million
//! connections a doubling `Vec` would copy hundreds of megabytes in one go (stalling the
//! shard) and leave the old buffer's pages resident in the allocator's cache.

/// Entries per chunk (a chunk of sessions is a few hundred KB).
const CHUNK: usize = 1024;

/// Slab of `T` addressed by `(slot, generation)`.
#[derive(Debug)]
pub struct GenSlab<T> {
    chunks: Vec<Box<[Entry<T>]>>,
    free: Vec<u32>,
    /// Slots ever handed out; slots below it exist in `chunks`.
    high: u32,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    gen: u32,
    value: Option<T>,
}

impl<T> Default for GenSlab<T> {
    fn default() -> Self {
        GenSlab {
            chunks: Vec::new(),
            free: Vec::new(),
            high: 0,
            len: 0,
        }
    }
}

impl<T> GenSlab<T> {
    fn entry(&self, slot: u32) -> Option<&Entry<T>> {
        self.chunks
            .get(slot as usize / CHUNK)?
            .get(slot as usize % CHUNK)
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<T>> {
        self.chunks
            .get_mut(slot as usize / CHUNK)?
            .get_mut(slot as usize % CHUNK)
    }

    /// Inserts the value built from its key; returns the key as `(slot, gen)`.
    pub fn insert_with(&mut self, make: impl FnOnce(u32, u32) -> T) -> (u32, u32) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.high;
                if s as usize / CHUNK == self.chunks.len() {
                    self.chunks.push(
                        (0..CHUNK)
                            .map(|_| Entry {
                                gen: 0,
                                value: None,
                            })
                            .collect(),
                    );
                }
                self.high += 1;
                s
            }
        };
        let Some(e) = self.entry_mut(slot) else {
            unreachable!("slot {slot} was just allocated")
        };
        e.gen = e.gen.wrapping_add(1);
        let gen = e.gen;
        e.value = Some(make(slot, gen));
        self.len += 1;
        (slot, gen)
    }

    pub fn get(&self, slot: u32, gen: u32) -> Option<&T> {
        self.entry(slot)
            .filter(|e| e.gen == gen)
            .and_then(|e| e.value.as_ref())
    }

    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut T> {
        self.entry_mut(slot)
            .filter(|e| e.gen == gen)
            .and_then(|e| e.value.as_mut())
    }

    pub fn remove(&mut self, slot: u32, gen: u32) -> Option<T> {
        let e = self.entry_mut(slot).filter(|e| e.gen == gen)?;
        let v = e.value.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .filter_map(|e| e.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut s = GenSlab::default();
        let (a, ga) = s.insert_with(|_, _| "a");
        assert_eq!(s.remove(a, ga), Some("a"));
        let (b, gb) = s.insert_with(|_, _| "b");
        assert_eq!(a, b, "slot is reused");
        assert_ne!(ga, gb);
        assert_eq!(s.get(a, ga), None);
        assert_eq!(s.get(b, gb), Some(&"b"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.remove(a, ga), None);
    }

    #[test]
    fn grows_across_chunks_and_keeps_every_value() {
        let mut s = GenSlab::default();
        let keys: Vec<_> = (0..3 * CHUNK + 5)
            .map(|i| s.insert_with(|_, _| i))
            .collect();
        assert_eq!(s.len(), 3 * CHUNK + 5);
        for (i, (slot, gen)) in keys.iter().enumerate() {
            assert_eq!(s.get(*slot, *gen), Some(&i));
        }
        assert_eq!(s.iter().count(), 3 * CHUNK + 5);
        assert_eq!(s.get(10 * CHUNK as u32, 1), None, "beyond the chunks");
    }
}
