//! A bounds-checked protobuf wire reader over a borrowed buffer, shared by
//! the one-pass remote write 1.0 and 2.0 walks. Every read checks the
//! remaining length first; nothing is allocated.

use crate::ModelError;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// One field: length-delimited payloads as slices, scalars as raw values.
pub(crate) enum Field<'a> {
    /// A length-delimited field (message, string, bytes, packed repeated).
    Bytes(u32, &'a [u8]),
    /// A varint field.
    Varint(u32, u64),
    /// A fixed 64-bit field (double, fixed64).
    Fixed64(u32, u64),
    /// A fixed 32-bit field (skipped; no message read here uses one).
    Other,
}

/// Reads fields from one message buffer; errors name `message`.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`, a (part of a) `message`.
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            message,
        }
    }

    /// True when the whole buffer has been read.
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The byte offset of the next read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The error for a malformed message.
    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Protobuf {
            message: self.message,
            reason: reason.into(),
        }
    }

    /// Reads a base-128 varint.
    pub(crate) fn varint(&mut self) -> Result<u64, ModelError> {
        let mut out: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.malformed("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(self.malformed("varint longer than 10 bytes"))
    }

    /// The next `len` bytes, or `None` when fewer remain.
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(b)
    }

    /// Calls `f` with every varint of a packed `repeated` payload.
    pub(crate) fn each_packed(
        buf: &[u8],
        message: &'static str,
        mut f: impl FnMut(u64) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let mut r = Reader::new(buf, message);
        while !r.done() {
            f(r.varint()?)?;
        }
        Ok(())
    }

    /// Reads the next field.
    pub(crate) fn next_field(&mut self) -> Result<Field<'a>, ModelError> {
        let key = self.varint()?;
        let number =
            u32::try_from(key >> 3).map_err(|_| self.malformed("field number too large"))?;
        if number == 0 {
            return Err(self.malformed("field number 0"));
        }
        match (key & 7) as u8 {
            WIRE_VARINT => Ok(Field::Varint(number, self.varint()?)),
            WIRE_FIXED64 => {
                let b = self
                    .take(8)
                    .ok_or_else(|| self.malformed("truncated fixed64"))?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(Field::Fixed64(number, u64::from_le_bytes(a)))
            }
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| self.malformed("length overflows"))?;
                let b = self
                    .take(len)
                    .ok_or_else(|| self.malformed("length runs past the end of the message"))?;
                Ok(Field::Bytes(number, b))
            }
            WIRE_FIXED32 => {
                self.take(4)
                    .ok_or_else(|| self.malformed("truncated fixed32"))?;
                Ok(Field::Other)
            }
            w => Err(self.malformed(format!("unsupported wire type {w}"))),
        }
    }
}
