//! The protobuf wire format, as far as a plan file's backend needs it, and the bounds-checked byte
//! reader both decoders share.

/// A field's payload, by wire type. Only length-delimited payloads are kept; the fixed and varint
/// ones are skipped over but must still be well-formed.
#[derive(Debug, PartialEq)]
pub(super) enum Wire<'a> {
    Varint,
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

/// Iterates over the fields of one protobuf message. Yields an error once and then stops.
pub(super) struct Fields<'a> {
    input: Cursor<'a>,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields {
            input: Cursor::new(bytes),
            failed: false,
        }
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.input.varint()?;
        let number = key >> 3;
        // Field numbers run from 1 to 2^29 - 1.
        if number == 0 || number > (1 << 29) - 1 {
            return Err("a protobuf field number is out of range".into());
        }
        let wire = match key & 7 {
            0 => {
                self.input.varint()?;
                Wire::Varint
            }
            1 => {
                self.input.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = self.input.varint()?;
                Wire::Bytes(self.input.take(len)?)
            }
            5 => {
                self.input.take(4)?;
                Wire::Fixed32
            }
            // 3 and 4 are the deprecated groups, which planproto never uses; 6 and 7 do not exist.
            _ => return Err("a protobuf field has an unsupported wire type".into()),
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.input.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// A bounds-checked reader over a byte slice, shared by both decoders.
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { rest: bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// How many bytes are left.
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `len` bytes; an error (not a short slice) when fewer remain, so that a length field,
    /// however large, never leads to an allocation or a read past the end.
    pub(super) fn take(&mut self, len: u64) -> Result<&'a [u8], String> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or("a length runs past the end of the data")?;
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn byte(&mut self) -> Result<u8, String> {
        let (&b, tail) = self
            .rest
            .split_first()
            .ok_or("the data ends in the middle of a value")?;
        self.rest = tail;
        Ok(b)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N as u64)?;
        // `take` returned exactly N bytes.
        bytes
            .try_into()
            .map_err(|_| "the data ends in the middle of a value".to_owned())
    }

    /// A protobuf base-128 varint: at most 10 bytes, the last holding only the 64th bit.
    pub(super) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err("a protobuf varint overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a protobuf varint overflows 64 bits".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::planfile::tests::put_varint;

    #[test]
    fn protobuf_walker() {
        fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
            Fields::new(b).collect()
        }
        assert_eq!(fields(&[]), Ok(vec![]));
        assert_eq!(
            fields(&[
                0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 0x01, 0x41, 0x25, 1, 2, 3, 4
            ]),
            Ok(vec![
                (1, Wire::Varint),
                (2, Wire::Fixed64),
                (3, Wire::Bytes(b"A")),
                (4, Wire::Fixed32)
            ])
        );
        // The largest field number, and a ten-byte varint value.
        let mut max = Vec::new();
        put_varint(&mut max, ((1 << 29) - 1) << 3);
        max.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(fields(&max), Ok(vec![((1 << 29) - 1, Wire::Varint)]));
        let bad: &[&[u8]] = &[
            &[0x00],       // field 0
            &[0x0b],       // group start
            &[0x0e],       // wire type 6
            &[0x08],       // varint missing
            &[0x08, 0x80], // varint cut short
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // 65 bits
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01,
            ], // 11 bytes
            &[0x09, 1, 2, 3], // fixed64 cut short
            &[0x0d, 1],    // fixed32 cut short
            &[0x0a, 0x05, 1], // bytes cut short
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ], // absurd length
            &[0xf8, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00], // field number above 2^29 - 1
        ];
        for b in bad {
            assert!(fields(b).is_err(), "{b:?}");
            // An error ends the iteration.
            assert_eq!(Fields::new(b).filter(Result::is_err).count(), 1, "{b:?}");
        }
    }
}
