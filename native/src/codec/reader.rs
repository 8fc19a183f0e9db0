//! Checked reading of the canonical encoding: [`Reader`] and the [`CodecError`] it reports.

use std::fmt;

use crate::hash::Hash;
use crate::types::TxKind;

/// Why bytes are not a canonical encoding. Offsets are from the start of the decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The input ended inside `what`, which needs `needed` bytes at `offset`.
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    /// A sequence count at `offset` claims more items than the remaining bytes can hold.
    CountTooLarge {
        what: &'static str,
        offset: usize,
        count: u32,
        min_item_len: usize,
        remaining: usize,
    },
    /// A transaction kind tag that is not one of docs/encoding.md.
    UnknownKind { offset: usize, tag: u8 },
    /// A payload length that is not exactly the kind's.
    PayloadLength {
        kind: TxKind,
        offset: usize,
        expected: usize,
        got: u32,
    },
    /// A boolean byte that is neither 0 nor 1.
    InvalidBool {
        what: &'static str,
        offset: usize,
        value: u8,
    },
    /// Bytes left after a complete value.
    TrailingBytes {
        what: &'static str,
        offset: usize,
        trailing: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated {
                what,
                offset,
                needed,
                remaining,
            } => write!(
                f,
                "truncated {what} at offset {offset}: needs {needed} bytes, {remaining} remain"
            ),
            CodecError::CountTooLarge {
                what,
                offset,
                count,
                min_item_len,
                remaining,
            } => write!(
                f,
                "{what} count {count} at offset {offset} needs at least {} bytes \
                 ({min_item_len} per item), only {remaining} remain",
                *count as u128 * *min_item_len as u128
            ),
            CodecError::UnknownKind { offset, tag } => write!(
                f,
                "unknown transaction kind {tag} at offset {offset} (expected 0..=4)"
            ),
            CodecError::PayloadLength {
                kind,
                offset,
                expected,
                got,
            } => write!(
                f,
                "payload length {got} at offset {offset} does not match kind {kind:?}: expected {expected}"
            ),
            CodecError::InvalidBool {
                what,
                offset,
                value,
            } => write!(f, "{what} at offset {offset} must be 0 or 1, got {value}"),
            CodecError::TrailingBytes {
                what,
                offset,
                trailing,
            } => write!(f, "{trailing} trailing bytes after {what} at offset {offset}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// A cursor over bytes with checked reads: every read either returns exactly the bytes asked
/// for or a [`CodecError`] naming the field and offset. Never panics.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The whole input the reader was made over.
    pub fn input(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next `n` bytes of `what`.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes of `what` as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A 32-byte hash.
    pub fn hash(&mut self, what: &'static str) -> Result<Hash, CodecError> {
        self.array(what)
    }

    /// A byte that must be 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        let offset = self.pos;
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(CodecError::InvalidBool {
                what,
                offset,
                value,
            }),
        }
    }

    /// A sequence count, checked against the remaining bytes: `count × min_item_len` must fit
    /// in what is left, so the caller can allocate `count` items safely.
    pub fn count(&mut self, what: &'static str, min_item_len: usize) -> Result<usize, CodecError> {
        let offset = self.pos;
        let count = self.u32(what)?;
        let remaining = self.remaining();
        if (count as u128) * (min_item_len as u128) > remaining as u128 {
            return Err(CodecError::CountTooLarge {
                what,
                offset,
                count,
                min_item_len,
                remaining,
            });
        }
        Ok(count as usize)
    }

    /// Ok if every byte has been read, else [`CodecError::TrailingBytes`] after `what`.
    pub fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(CodecError::TrailingBytes {
                what,
                offset: self.pos,
                trailing: self.remaining(),
            });
        }
        Ok(())
    }
}
