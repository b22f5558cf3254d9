//! A generational slab: dense storage with stable `(slot, gen)` keys.
//!
//! A key whose slot has been freed and reused carries an older generation and finds
//! nothing, so timers and cross-shard replies that outlive their target are harmless.

/// Slab of `T` addressed by `(slot, generation)`.
#[derive(Debug)]
pub struct GenSlab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
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
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> GenSlab<T> {
    /// Inserts the value built from its key; returns the key as `(slot, gen)`.
    pub fn insert_with(&mut self, make: impl FnOnce(u32, u32) -> T) -> (u32, u32) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    value: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let e = &mut self.entries[slot as usize];
        e.gen = e.gen.wrapping_add(1);
        e.value = Some(make(slot, e.gen));
        self.len += 1;
        (slot, e.gen)
    }

    pub fn get(&self, slot: u32, gen: u32) -> Option<&T> {
        self.entries
            .get(slot as usize)
            .filter(|e| e.gen == gen)
            .and_then(|e| e.value.as_ref())
    }

    pub fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut T> {
        self.entries
            .get_mut(slot as usize)
            .filter(|e| e.gen == gen)
            .and_then(|e| e.value.as_mut())
    }

    pub fn remove(&mut self, slot: u32, gen: u32) -> Option<T> {
        let e = self
            .entries
            .get_mut(slot as usize)
            .filter(|e| e.gen == gen)?;
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
        self.entries.iter().filter_map(|e| e.value.as_ref())
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
}
