//! Canonical binary encoding helpers: one macro for records, one for tagged enums, bounded vectors.
//!
//! Every ledger type encodes with the Commonware codec. Decoders take no configuration (`Cfg = ()`)
//! because every length has a hard bound written next to the type, so that malformed or hostile
//! bytes fail with an error instead of allocating without limit.

use bytes::BufMut;
use commonware_codec::Buf;
use commonware_codec::{EncodeSize, Error, Read, ReadExt, Write, varint::UInt};

/// Implement `Write`, `EncodeSize` and `Read<Cfg = ()>` for a struct by encoding its fields in order.
#[macro_export]
macro_rules! codec_struct {
    ($name:ident { $($field:tt : $ty:ty),* $(,)? }) => {
        impl commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl bytes::BufMut) {
                $( commonware_codec::Write::write(&self.$field, buf); )*
            }
        }
        impl commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                0 $( + commonware_codec::EncodeSize::encode_size(&self.$field) )*
            }
        }
        impl commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, commonware_codec::Error> {
                Ok(Self { $( $field: <$ty as commonware_codec::ReadExt>::read(buf)?, )* })
            }
        }
    };
}

/// Write a length-prefixed sequence.
pub fn write_seq<T: Write>(items: &[T], buf: &mut impl BufMut) {
    UInt(items.len() as u64).write(buf);
    for item in items {
        item.write(buf);
    }
}

/// The encoded size of a length-prefixed sequence.
pub fn seq_size<T: EncodeSize>(items: &[T]) -> usize {
    UInt(items.len() as u64).encode_size()
        + items.iter().map(EncodeSize::encode_size).sum::<usize>()
}

/// Read a length-prefixed sequence of at most `max` items.
pub fn read_seq<T: Read>(buf: &mut impl Buf, max: usize) -> Result<Vec<T>, Error>
where
    T::Cfg: Default,
{
    let cfg = T::Cfg::default();
    let length = UInt::<u64>::read(buf)?.0;
    if length > max as u64 {
        return Err(Error::InvalidLength(length as usize));
    }
    // Do not trust the prefix for allocation beyond what the buffer can hold.
    let mut items = Vec::with_capacity((length as usize).min(buf.remaining()));
    for _ in 0..length {
        items.push(T::read_cfg(buf, &cfg)?);
    }
    Ok(items)
}

/// Implement the codec for an enum whose variants each carry one field or none, with a stable tag.
#[macro_export]
macro_rules! codec_enum {
    ($name:ident { $($tag:literal => $variant:ident $(($ty:ty))?),* $(,)? }) => {
        impl commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl bytes::BufMut) {
                match self {
                    $( $crate::codec_enum!(@pat $name $variant value $($ty)?) => {
                        commonware_codec::Write::write(&($tag as u8), buf);
                        $crate::codec_enum!(@write value buf $($ty)?);
                    } )*
                }
            }
        }
        impl commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                1 + match self {
                    $( $crate::codec_enum!(@pat $name $variant value $($ty)?) =>
                        $crate::codec_enum!(@size value $($ty)?), )*
                }
            }
        }
        impl commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, commonware_codec::Error> {
                let tag = <u8 as commonware_codec::ReadExt>::read(buf)?;
                match tag {
                    $( $tag => Ok($crate::codec_enum!(@read $name $variant buf $($ty)?)), )*
                    other => Err(commonware_codec::Error::InvalidEnum(other)),
                }
            }
        }
    };
    (@pat $name:ident $variant:ident $value:ident $ty:ty) => { $name::$variant($value) };
    (@pat $name:ident $variant:ident $value:ident) => { $name::$variant };
    (@write $value:ident $buf:ident $ty:ty) => { commonware_codec::Write::write($value, $buf) };
    (@write $value:ident $buf:ident) => { () };
    (@size $value:ident $ty:ty) => { commonware_codec::EncodeSize::encode_size($value) };
    (@size $value:ident) => { 0 };
    (@read $name:ident $variant:ident $buf:ident $ty:ty) => {
        $name::$variant(<$ty as commonware_codec::ReadExt>::read($buf)?)
    };
    (@read $name:ident $variant:ident $buf:ident) => { $name::$variant };
}

/// Implement the codec for a struct whose one field is a vector of at most `$max` items,
/// encoded length-prefixed (`codec_seq!(Bundle { legs }, 1024)`, or `{ 0 }` for a tuple struct).
#[macro_export]
macro_rules! codec_seq {
    ($name:ident { $field:tt }, $max:expr) => {
        impl commonware_codec::Write for $name {
            fn write(&self, buf: &mut impl bytes::BufMut) {
                $crate::codec::write_seq(&self.$field, buf)
            }
        }
        impl commonware_codec::EncodeSize for $name {
            fn encode_size(&self) -> usize {
                $crate::codec::seq_size(&self.$field)
            }
        }
        impl commonware_codec::Read for $name {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl commonware_codec::Buf,
                _: &(),
            ) -> Result<Self, commonware_codec::Error> {
                Ok(Self {
                    $field: $crate::codec::read_seq(buf, $max)?,
                })
            }
        }
    };
}

/// A vector of at most `MAX` items, encoded length-prefixed: a record field whose bound is
/// written in its type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundedVec<T, const MAX: usize>(pub Vec<T>);

impl<T, const MAX: usize> std::ops::Deref for BoundedVec<T, MAX> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}
impl<T, const MAX: usize> std::ops::DerefMut for BoundedVec<T, MAX> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}
impl<T, const MAX: usize> From<Vec<T>> for BoundedVec<T, MAX> {
    fn from(items: Vec<T>) -> Self {
        BoundedVec(items)
    }
}
impl<T: Write, const MAX: usize> Write for BoundedVec<T, MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        write_seq(&self.0, buf)
    }
}
impl<T: EncodeSize, const MAX: usize> EncodeSize for BoundedVec<T, MAX> {
    fn encode_size(&self) -> usize {
        seq_size(&self.0)
    }
}
impl<T: Read, const MAX: usize> Read for BoundedVec<T, MAX>
where
    T::Cfg: Default,
{
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        read_seq(buf, MAX).map(BoundedVec)
    }
}
