//! A ZIP writer for a non-seekable stream: local headers with data descriptors, ZIP64 where sizes
//! or offsets pass 4 GiB, the central directory at the end.
//!
//! Memory stays bounded: data is copied through a fixed buffer and only the central directory
//! (about 100 bytes per entry) is kept until [`ZipStream::finish`].

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;
use time::OffsetDateTime;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;

const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by Unix (3), specification 4.5: external attributes carry Unix modes.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
const U32_MAX: u64 = 0xFFFF_FFFF;
/// Entries whose announced size reaches this use ZIP64 (deflate may grow data a little).
const ZIP64_THRESHOLD: u64 = 0xF000_0000;
const BUFFER: usize = 64 * 1024;

/// How an entry's data is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// As is (for data that is already compressed).
    Stored,
    /// Deflated (for text).
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Self::Stored => 0,
            Self::Deflated => 8,
        }
    }
}

/// Counts what passes through to the output.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A ZIP archive being written to `W`.
pub struct ZipStream<W: Write> {
    out: Counting<W>,
    central: Vec<u8>,
    entries: u64,
}

fn dos_time(t: OffsetDateTime) -> (u16, u16) {
    let t = t.to_offset(time::UtcOffset::UTC);
    if t.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    let year = u16::try_from((t.year() - 1980).min(127)).unwrap_or(127);
    let date = (year << 9) | (u16::from(u8::from(t.month())) << 5) | u16::from(t.day());
    let time =
        (u16::from(t.hour()) << 11) | (u16::from(t.minute()) << 5) | u16::from(t.second() / 2);
    (time, date)
}

fn unix_time(t: OffsetDateTime) -> u32 {
    u32::try_from(t.unix_timestamp().max(0)).unwrap_or(u32::MAX)
}

fn too_long(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} is too long for ZIP"),
    )
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn low32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// What the central directory needs to know about one entry.
struct Finished {
    name: String,
    method: Method,
    flags: u16,
    modified: OffsetDateTime,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    zip64: bool,
    dir: bool,
}

impl<W: Write> ZipStream<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: Counting {
                inner: out,
                written: 0,
            },
            central: Vec::new(),
            entries: 0,
        }
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.out.written
    }

    fn local_header(
        &mut self,
        name: &str,
        method: Method,
        flags: u16,
        modified: OffsetDateTime,
        zip64: bool,
    ) -> io::Result<()> {
        let name_len = u16::try_from(name.len()).map_err(|_| too_long("an entry name"))?;
        let (time, date) = dos_time(modified);
        let mut h = Vec::with_capacity(30 + name.len() + 29);
        put32(&mut h, LOCAL_HEADER);
        put16(
            &mut h,
            if zip64 {
                VERSION_ZIP64
            } else {
                VERSION_DEFAULT
            },
        );
        put16(&mut h, flags);
        put16(&mut h, method.code());
        put16(&mut h, time);
        put16(&mut h, date);
        put32(&mut h, 0);
        let sizes = if zip64 { u32::MAX } else { 0 };
        put32(&mut h, sizes);
        put32(&mut h, sizes);
        put16(&mut h, name_len);
        put16(&mut h, if zip64 { 20 + 9 } else { 9 });
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            put16(&mut h, 0x0001);
            put16(&mut h, 16);
            put64(&mut h, 0);
            put64(&mut h, 0);
        }
        put16(&mut h, 0x5455);
        put16(&mut h, 5);
        h.push(1);
        put32(&mut h, unix_time(modified));
        self.out.write_all(&h)
    }

    /// Adds a directory (`name` without the trailing `/`).
    ///
    /// # Errors
    /// Writing failed.
    pub fn add_dir(&mut self, name: &str, modified: OffsetDateTime) -> io::Result<()> {
        let name = format!("{name}/");
        let offset = self.out.written;
        self.local_header(&name, Method::Stored, FLAG_UTF8, modified, false)?;
        self.record(&Finished {
            name,
            method: Method::Stored,
            flags: FLAG_UTF8,
            modified,
            crc: 0,
            compressed: 0,
            size: 0,
            offset,
            zip64: false,
            dir: true,
        });
        Ok(())
    }

    /// Adds a file whose data `data` yields; `size_hint` is its expected length (it decides
    /// whether the entry needs ZIP64). Returns the uncompressed length written.
    ///
    /// # Errors
    /// Reading or writing failed, or an entry announced under 4 GiB turned out larger.
    pub fn add_file(
        &mut self,
        name: &str,
        modified: OffsetDateTime,
        method: Method,
        size_hint: u64,
        data: &mut dyn Read,
    ) -> io::Result<u64> {
        let mut entry = self.start_file(name, modified, method, size_hint)?;
        let mut buf = vec![0u8; BUFFER];
        copy(data, &mut entry, &mut buf)?;
        entry.finish()
    }

    /// Starts a file entry to be written through the returned [`Entry`]; see
    /// [`ZipStream::add_file`] for `size_hint`.
    ///
    /// # Errors
    /// Writing the local header failed, or the name is too long.
    pub fn start_file(
        &mut self,
        name: &str,
        modified: OffsetDateTime,
        method: Method,
        size_hint: u64,
    ) -> io::Result<Entry<'_, W>> {
        let zip64 = size_hint >= ZIP64_THRESHOLD;
        let flags = FLAG_UTF8 | FLAG_DATA_DESCRIPTOR;
        let offset = self.out.written;
        self.local_header(name, method, flags, modified, zip64)?;
        let start = self.out.written;
        let Self {
            out,
            central,
            entries,
        } = self;
        let sink = match method {
            Method::Stored => Sink::Stored(out),
            Method::Deflated => Sink::Deflated(DeflateEncoder::new(out, Compression::default())),
        };
        Ok(Entry {
            sink,
            hasher: crc32fast::Hasher::new(),
            size: 0,
            start,
            size_hint,
            info: Finished {
                name: name.to_owned(),
                method,
                flags,
                modified,
                crc: 0,
                compressed: 0,
                size: 0,
                offset,
                zip64,
                dir: false,
            },
            central,
            entries,
        })
    }

    fn record(&mut self, f: &Finished) {
        record(&mut self.central, &mut self.entries, f);
    }
}

fn record(central: &mut Vec<u8>, entries: &mut u64, f: &Finished) {
    let (time, date) = dos_time(f.modified);
    let big_offset = f.offset >= U32_MAX;
    let mut extra = Vec::new();
    if f.zip64 || big_offset {
        let mut fields = Vec::new();
        if f.zip64 {
            put64(&mut fields, f.size);
            put64(&mut fields, f.compressed);
        }
        if big_offset {
            put64(&mut fields, f.offset);
        }
        put16(&mut extra, 0x0001);
        put16(&mut extra, u16::try_from(fields.len()).unwrap_or(24));
        extra.extend_from_slice(&fields);
    }
    put16(&mut extra, 0x5455);
    put16(&mut extra, 5);
    extra.push(1);
    put32(&mut extra, unix_time(f.modified));
    let c = central;
    put32(c, CENTRAL_HEADER);
    put16(c, MADE_BY);
    put16(
        c,
        if f.zip64 || big_offset {
            VERSION_ZIP64
        } else {
            VERSION_DEFAULT
        },
    );
    put16(c, f.flags);
    put16(c, f.method.code());
    put16(c, time);
    put16(c, date);
    put32(c, f.crc);
    put32(
        c,
        if f.zip64 {
            u32::MAX
        } else {
            low32(f.compressed)
        },
    );
    put32(c, if f.zip64 { u32::MAX } else { low32(f.size) });
    // The name length was checked when the local header was written.
    put16(c, u16::try_from(f.name.len()).unwrap_or(u16::MAX));
    put16(c, u16::try_from(extra.len()).unwrap_or(u16::MAX));
    put16(c, 0);
    put16(c, 0);
    put16(c, 0);
    let mode: u32 = if f.dir { 0o040_755 } else { 0o100_644 };
    put32(c, (mode << 16) | if f.dir { 0x10 } else { 0 });
    put32(
        c,
        if big_offset {
            u32::MAX
        } else {
            low32(f.offset)
        },
    );
    c.extend_from_slice(f.name.as_bytes());
    c.extend_from_slice(&extra);
    *entries += 1;
}

impl<W: Write> ZipStream<W> {
    /// Writes the central directory and returns the output and the archive's length.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let cd_offset = self.out.written;
        let central = std::mem::take(&mut self.central);
        self.out.write_all(&central)?;
        let cd_size = central.len() as u64;
        drop(central);
        let zip64 = self.entries >= 0xFFFF || cd_offset >= U32_MAX || cd_size >= U32_MAX;
        let mut e = Vec::new();
        if zip64 {
            let z64_offset = self.out.written;
            put32(&mut e, ZIP64_END_OF_CENTRAL);
            put64(&mut e, 44);
            put16(&mut e, MADE_BY);
            put16(&mut e, VERSION_ZIP64);
            put32(&mut e, 0);
            put32(&mut e, 0);
            put64(&mut e, self.entries);
            put64(&mut e, self.entries);
            put64(&mut e, cd_size);
            put64(&mut e, cd_offset);
            put32(&mut e, ZIP64_LOCATOR);
            put32(&mut e, 0);
            put64(&mut e, z64_offset);
            put32(&mut e, 1);
        }
        let count = if zip64 {
            u16::MAX
        } else {
            u16::try_from(self.entries).unwrap_or(u16::MAX)
        };
        put32(&mut e, END_OF_CENTRAL);
        put16(&mut e, 0);
        put16(&mut e, 0);
        put16(&mut e, count);
        put16(&mut e, count);
        put32(&mut e, if zip64 { u32::MAX } else { low32(cd_size) });
        put32(&mut e, if zip64 { u32::MAX } else { low32(cd_offset) });
        put16(&mut e, 0);
        self.out.write_all(&e)?;
        self.out.flush()?;
        Ok((self.out.inner, self.out.written))
    }
}

enum Sink<'a, W: Write> {
    Stored(&'a mut Counting<W>),
    Deflated(DeflateEncoder<&'a mut Counting<W>>),
}

/// A file entry being written: write its data, then [`Entry::finish`] it.
pub struct Entry<'a, W: Write> {
    sink: Sink<'a, W>,
    hasher: crc32fast::Hasher,
    size: u64,
    start: u64,
    size_hint: u64,
    info: Finished,
    central: &'a mut Vec<u8>,
    entries: &'a mut u64,
}

impl<W: Write> Write for Entry<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.sink {
            Sink::Stored(w) => w.write(buf)?,
            Sink::Deflated(w) => w.write(buf)?,
        };
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stored(w) => w.flush(),
            Sink::Deflated(w) => w.flush(),
        }
    }
}

impl<W: Write> Entry<'_, W> {
    /// Ends the entry: its data descriptor and central-directory record. Returns the
    /// uncompressed length written.
    ///
    /// # Errors
    /// Writing failed, or an entry announced under 4 GiB turned out larger.
    pub fn finish(self) -> io::Result<u64> {
        let out = match self.sink {
            Sink::Stored(w) => w,
            Sink::Deflated(w) => w.finish()?,
        };
        let mut info = self.info;
        info.crc = self.hasher.finalize();
        info.size = self.size;
        info.compressed = out.written - self.start;
        if !info.zip64 && (info.size >= U32_MAX || info.compressed >= U32_MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: announced as {} bytes but has {}",
                    info.name, self.size_hint, info.size
                ),
            ));
        }
        let mut d = Vec::with_capacity(24);
        put32(&mut d, DATA_DESCRIPTOR);
        put32(&mut d, info.crc);
        if info.zip64 {
            put64(&mut d, info.compressed);
            put64(&mut d, info.size);
        } else {
            put32(&mut d, low32(info.compressed));
            put32(&mut d, low32(info.size));
        }
        out.write_all(&d)?;
        record(self.central, self.entries, &info);
        Ok(info.size)
    }
}

fn copy(r: &mut dyn Read, w: &mut dyn Write, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_encode_fields_and_clamp_old_dates() {
        let t = time::macros::datetime!(2026-11-24 14:30:58 UTC);
        let (tm, d) = dos_time(t);
        assert_eq!(d >> 9, 46);
        assert_eq!((d >> 5) & 0xF, 11);
        assert_eq!(d & 0x1F, 24);
        assert_eq!(tm >> 11, 14);
        assert_eq!((tm >> 5) & 0x3F, 30);
        assert_eq!(tm & 0x1F, 29);
        assert_eq!(dos_time(OffsetDateTime::UNIX_EPOCH), (0, 33));
    }

    #[test]
    fn an_archive_has_its_entries_and_end_record() {
        let mut z = ZipStream::new(Vec::new());
        let t = OffsetDateTime::UNIX_EPOCH;
        z.add_dir("d", t).unwrap();
        let n = z
            .add_file("d/a.txt", t, Method::Deflated, 5, &mut &b"hello"[..])
            .unwrap();
        assert_eq!(n, 5);
        z.add_file("d/b.bin", t, Method::Stored, 3, &mut &b"xyz"[..])
            .unwrap();
        let (bytes, n) = z.finish().unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(&bytes[..4], &LOCAL_HEADER.to_le_bytes());
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(&end[..4], &END_OF_CENTRAL.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 3);
        let crc = crc32fast::hash(b"xyz").to_le_bytes();
        assert!(bytes.windows(4).any(|w| w == crc));
    }

    #[test]
    fn long_entry_names_are_refused() {
        let mut z = ZipStream::new(Vec::new());
        let name = "x".repeat(70_000);
        let t = OffsetDateTime::UNIX_EPOCH;
        assert!(
            z.add_file(&name, t, Method::Stored, 0, &mut &b""[..])
                .is_err()
        );
    }
}
