//! The table arrays mapped into the loader's memory (`BPF_F_MMAPABLE`): building a
//! generation is a memory copy into its region, listing one a memory scan.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::MapData;

use crate::error::{Error, Result};

/// A `BPF_F_MMAPABLE` array of `T`, mapped read-write.
pub struct Mapped<T> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
}

impl<T: Copy> Mapped<T> {
    /// Maps all `max_entries` values of `map` (whose values are `T`).
    pub fn new(map: &MapData, name: &'static str) -> Result<Self> {
        let info = map
            .info()
            .map_err(|e| Error::map(name, "reading map info", e))?;
        if info.value_size() as usize != size_of::<T>() {
            return Err(Error::Map {
                map: name,
                what: format!(
                    "value size {} where {} was expected (pinned by another version of lvs-loader?)",
                    info.value_size(),
                    size_of::<T>()
                ),
                source: None,
            });
        }
        let len = info.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let bytes = (len * size_of::<T>()).div_ceil(page) * page;
        // SAFETY: a shared mapping of the map's fd; the kernel checks size and flags.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::io(
                format!("mapping map {name} into memory (BPF_F_MMAPABLE, Linux >= 5.5)"),
                std::io::Error::last_os_error(),
            ));
        }
        let ptr = NonNull::new(p.cast::<T>()).ok_or(Error::Map {
            map: name,
            what: "mmap returned NULL".into(),
            source: None,
        })?;
        Ok(Self { ptr, len, bytes })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `values` to `[start, start + values.len())`.
    pub fn write(&mut self, start: usize, values: &[T]) -> Result<(), std::ops::Range<usize>> {
        let end = start.checked_add(values.len()).filter(|&e| e <= self.len);
        let Some(_) = end else {
            return Err(start..start.saturating_add(values.len()));
        };
        // SAFETY: in bounds of the mapping; the region belongs to the standby generation,
        // which no packet reads.
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr(),
                self.ptr.as_ptr().add(start),
                values.len(),
            )
        };
        Ok(())
    }

    /// A copy of `[start, start + n)`.
    pub fn read(&self, start: usize, n: usize) -> Result<Vec<T>, std::ops::Range<usize>> {
        let end = start.checked_add(n).filter(|&e| e <= self.len);
        let Some(_) = end else {
            return Err(start..start.saturating_add(n));
        };
        let mut out = Vec::with_capacity(n);
        // SAFETY: in bounds of the mapping; the program never writes the tables.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(start), out.as_mut_ptr(), n);
            out.set_len(n);
        }
        Ok(out)
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what new() mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<T: Copy> Mapped<T> {
        /// `len` zeroed values in anonymous memory (the same code paths as a map's).
        fn anonymous(len: usize) -> Self {
            let bytes = (len * size_of::<T>()).max(1);
            // SAFETY: a private anonymous mapping; checked below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            Self {
                ptr: NonNull::new(p.cast::<T>()).expect("mapping"),
                len,
                bytes,
            }
        }
    }

    /// Writes land where asked and read back; a range past the end is refused whole
    /// (nothing written) and named.
    #[test]
    fn writes_and_reads_stay_in_bounds() {
        let mut m = Mapped::<u64>::anonymous(8);
        assert_eq!((m.len(), m.is_empty()), (8, false));
        assert_eq!(m.write(2, &[7, 8, 9]), Ok(()));
        assert_eq!(m.read(0, 8), Ok(vec![0, 0, 7, 8, 9, 0, 0, 0]));
        assert_eq!(m.write(6, &[1, 2]), Ok(()));
        assert_eq!(m.read(6, 2), Ok(vec![1, 2]));
        assert_eq!(m.write(7, &[3, 4]), Err(7..9));
        assert_eq!(m.read(7, 1), Ok(vec![2]), "a refused write changes nothing");
        assert_eq!(m.write(usize::MAX, &[1]), Err(usize::MAX..usize::MAX));
        assert_eq!(m.read(5, 4), Err(5..9));
        assert_eq!(m.read(8, 0), Ok(vec![]));
        assert!(Mapped::<u64>::anonymous(0).is_empty());
    }
}
