//! emoncms's feed files taken whole, for the commands that move a feed's data between ynni and
//! an emoncms installation (`ynni import emoncms`, `ynni export emoncms`). The byte layouts are
//! the engines' own ([`crate::fixed`], [`crate::variable`]); this module names a feed's files,
//! reads what those commands need from files that must not be changed (an emoncms directory is
//! read as it is: opening it as a feed could finish an interrupted trim in it), and writes
//! emoncms's engine-0 (MySQL) rows as a variable-interval file.
//!
//! # On-disk format
//!
//! ```text
//! phpfina/<id>.meta             16 bytes, four u32 little-endian: [0, 0, interval, start_time]
//! phpfina/<id>.dat              f32 little-endian, one per slot; NaN = missing
//! phptimeseries/feed_<id>.MYD   9-byte records: u8 0xF9 | u32 LE unix time | f32 LE value
//! ```
//!
//! A fixed-interval feed's last slot is at `start_time + interval * (len(.dat) / 4 - 1)`, a
//! variable-interval feed's last point is its file's last whole record. Trailing bytes short of
//! a slot or a record are not data, as in emoncms; a `.meta` longer than 16 bytes is read from
//! its first 16, as emoncms reads it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::engine::Storage;
use crate::error::{Result, StorageError, io_err};
use crate::fixed::{self, FixedMeta};
use crate::variable::{self, RECORD};

/// The files holding feed `id`'s points in `dir`, its format's directory (`phpfina` or
/// `phptimeseries`). Two directories list a feed's files in the same order.
pub fn feed_files(storage: Storage, dir: &Path, id: u32) -> Vec<PathBuf> {
    match storage {
        Storage::Fixed => vec![fixed::meta_path(dir, id), fixed::dat_path(dir, id)],
        Storage::Variable => vec![variable::file_path(dir, id)],
    }
}

/// How many leading bytes of each of feed `id`'s files in `dir` (in [`feed_files`] order) hold
/// the feed: a `.meta`'s first 16, a data file's whole slots or records. The bytes after are
/// a write a crash cut short, not data (emoncms reads past them too); ynni opens only files of
/// whole units, so these lengths are what to take. A meta no feed can be opened with (an
/// interval of 0, or no start time under data) is an error: taking it would leave a feed that
/// fails every time its shard opens it.
pub fn whole_lengths(storage: Storage, dir: &Path, id: u32) -> Result<Vec<u64>> {
    let len = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .map_err(io_err("reading", p))
    };
    match storage {
        Storage::Fixed => {
            let meta_path = fixed::meta_path(dir, id);
            let bytes = meta_head(&meta_path)?;
            let corrupt = |reason: String| StorageError::CorruptMeta {
                path: meta_path.clone(),
                reason,
            };
            let Some((interval, start_time)) = fixed::decode_meta(&bytes) else {
                return Err(corrupt(format!(
                    "{} bytes, expected at least {}",
                    bytes.len(),
                    fixed::META_LEN
                )));
            };
            if interval == 0 {
                return Err(corrupt("interval is 0".into()));
            }
            let dat = len(&fixed::dat_path(dir, id))?;
            let whole = dat - dat % fixed::SLOT_LEN;
            if start_time == 0 && whole > 0 {
                return Err(corrupt(format!(
                    "start time 0 with {} slots of data",
                    whole / fixed::SLOT_LEN
                )));
            }
            Ok(vec![fixed::META_LEN as u64, whole])
        }
        Storage::Variable => {
            let n = len(&variable::file_path(dir, id))?;
            Ok(vec![n - n % RECORD])
        }
    }
}

/// The first [`fixed::META_LEN`] bytes of the meta file at `path` (all a meta holds; emoncms
/// reads no more), which must be a plain file: a planted symlink (to `/dev/zero`) or a huge
/// sparse file is not read whole.
fn meta_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err("reading", path))?;
    if !file.metadata().map_err(io_err("reading", path))?.is_file() {
        return Err(StorageError::CorruptMeta {
            path: path.to_path_buf(),
            reason: "not a plain file".into(),
        });
    }
    let mut bytes = Vec::with_capacity(fixed::META_LEN);
    file.take(fixed::META_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", path))?;
    Ok(bytes)
}

/// The unix time of the last point in feed `id`'s files in `dir`, or `None` for a feed without
/// data. Every file of the feed must exist.
pub fn end_time(storage: Storage, dir: &Path, id: u32) -> Result<Option<u64>> {
    match storage {
        Storage::Fixed => fixed_end_time(dir, id),
        Storage::Variable => variable_end_time(dir, id),
    }
}

fn fixed_end_time(dir: &Path, id: u32) -> Result<Option<u64>> {
    let meta_path = fixed::meta_path(dir, id);
    let bytes = meta_head(&meta_path)?;
    let Some((interval, start_time)) = fixed::decode_meta(&bytes) else {
        return Err(StorageError::CorruptMeta {
            path: meta_path,
            reason: format!(
                "{} bytes, expected at least {}",
                bytes.len(),
                fixed::META_LEN
            ),
        });
    };
    let dat_path = fixed::dat_path(dir, id);
    let len = fs::metadata(&dat_path)
        .map_err(io_err("reading", &dat_path))?
        .len();
    let meta = FixedMeta {
        interval,
        start_time,
        npoints: len / fixed::SLOT_LEN,
    };
    Ok((meta.npoints > 0).then(|| meta.end_time()))
}

fn variable_end_time(dir: &Path, id: u32) -> Result<Option<u64>> {
    let path = variable::file_path(dir, id);
    let len = fs::metadata(&path).map_err(io_err("reading", &path))?.len();
    let records = len / RECORD;
    if records == 0 {
        return Ok(None);
    }
    let mut record = [0u8; RECORD as usize];
    File::open(&path)
        .and_then(|f| f.read_exact_at(&mut record, (records - 1) * RECORD))
        .map_err(io_err("reading", &path))?;
    let last = variable::decode_records(&record).next();
    Ok(last.map(|(t, _)| u64::from(t)))
}

/// The points in feed `id`'s variable-interval file in `dir`, in file order, and the file's
/// size in bytes. A feed that never had data may have no file: it has no points and size 0.
pub fn read_variable(dir: &Path, id: u32) -> Result<(Vec<(u32, f32)>, u64)> {
    let path = variable::file_path(dir, id);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("reading", &path)(e)),
    };
    let points: Vec<(u32, f32)> = variable::decode_records(&bytes).collect();
    Ok((points, bytes.len() as u64))
}

/// A variable-interval file written point by point, for points that arrive as a stream
/// (emoncms's engine-0 rows, read in time order). Nothing is fsynced: the file is meant to be
/// a temporary one that [`crate::atomic_file::commit`] syncs and puts in place.
#[derive(Debug)]
pub struct VariableFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// One record's bytes, reused so a long stream does not allocate per point.
    record: Vec<u8>,
    bytes: u64,
}

impl VariableFileWriter {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(io_err("creating", path))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
            record: Vec::with_capacity(RECORD as usize),
            bytes: 0,
        })
    }

    /// Appends the point (`time`, `value`); the value is stored as f32. The caller keeps the
    /// times ascending, as the format requires.
    pub fn push(&mut self, time: i64, value: f64) -> Result<()> {
        let t = u32::try_from(time).map_err(|_| StorageError::TimeOutOfRange {
            path: self.path.clone(),
            time,
        })?;
        self.record.clear();
        variable::encode_record(t, value as f32, &mut self.record);
        self.out
            .write_all(&self.record)
            .map_err(io_err("writing", &self.path))?;
        self.bytes += RECORD;
        Ok(())
    }

    /// Writes out what is buffered and returns the file's size.
    pub fn finish(mut self) -> Result<u64> {
        self.out.flush().map_err(io_err("writing", &self.path))?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variable::VariableFeed;

    const T0: u32 = 1_700_000_000;

    fn reference(sub: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/emoncms/emoncms-data")
            .join(sub)
    }

    #[test]
    fn file_names_are_emoncms_names() {
        let dir = Path::new("/d");
        assert_eq!(
            feed_files(Storage::Fixed, dir, 7),
            [dir.join("7.meta"), dir.join("7.dat")]
        );
        assert_eq!(
            feed_files(Storage::Variable, dir, 7),
            [dir.join("feed_7.MYD")]
        );
    }

    #[test]
    fn whole_lengths_cut_torn_tails_and_refuse_metas_no_feed_opens_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut meta = fixed::encode_meta(10, T0).to_vec();
        meta.extend_from_slice(&[1, 2, 3]);
        fs::write(d.join("1.meta"), &meta).expect("meta");
        fs::write(d.join("1.dat"), [0u8; 14]).expect("dat");
        assert_eq!(
            whole_lengths(Storage::Fixed, d, 1).expect("lengths"),
            [16, 12]
        );
        fs::write(d.join("1.meta"), fixed::encode_meta(0, T0)).expect("meta");
        assert!(matches!(
            whole_lengths(Storage::Fixed, d, 1),
            Err(StorageError::CorruptMeta { .. })
        ));
        fs::write(d.join("1.meta"), fixed::encode_meta(10, 0)).expect("meta");
        assert!(matches!(
            whole_lengths(Storage::Fixed, d, 1),
            Err(StorageError::CorruptMeta { .. })
        ));
        // No start time is fine while there is no whole slot.
        fs::write(d.join("1.dat"), [0u8; 3]).expect("dat");
        assert_eq!(
            whole_lengths(Storage::Fixed, d, 1).expect("lengths"),
            [16, 0]
        );
        fs::write(d.join("feed_1.MYD"), [0u8; 9 * 3 + 5]).expect("myd");
        assert_eq!(
            whole_lengths(Storage::Variable, d, 1).expect("lengths"),
            [27]
        );
        assert!(whole_lengths(Storage::Variable, d, 2).is_err(), "no file");
    }

    /// A meta grown huge (sparse) is read from its first 16 bytes; a symlinked one is refused,
    /// not followed.
    #[test]
    fn a_huge_or_symlinked_meta_is_not_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join("1.meta"), fixed::encode_meta(10, T0)).expect("meta");
        File::options()
            .write(true)
            .open(d.join("1.meta"))
            .and_then(|f| f.set_len(64 << 30))
            .expect("sparse");
        fs::write(d.join("1.dat"), [0u8; 8]).expect("dat");
        assert_eq!(
            whole_lengths(Storage::Fixed, d, 1).expect("lengths"),
            [16, 8]
        );
        assert_eq!(
            end_time(Storage::Fixed, d, 1).expect("end"),
            Some(u64::from(T0) + 10)
        );
        fs::write(d.join("2.dat"), [0u8; 8]).expect("dat");
        std::os::unix::fs::symlink("/dev/zero", d.join("2.meta")).expect("symlink");
        assert!(whole_lengths(Storage::Fixed, d, 2).is_err());
        assert!(end_time(Storage::Fixed, d, 2).is_err());
    }

    #[test]
    fn fixed_end_time_from_the_meta_and_the_data_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join("1.meta"), fixed::encode_meta(10, T0)).expect("meta");
        fs::write(d.join("1.dat"), [0u8; 12]).expect("dat");
        let end = end_time(Storage::Fixed, d, 1).expect("end");
        assert_eq!(end, Some(u64::from(T0) + 20));
        // A partial slot is not data; a longer meta is read from its first 16 bytes.
        let mut meta = fixed::encode_meta(10, T0).to_vec();
        meta.extend_from_slice(&[1, 2, 3]);
        fs::write(d.join("1.meta"), meta).expect("meta");
        fs::write(d.join("1.dat"), [0u8; 14]).expect("dat");
        let end = end_time(Storage::Fixed, d, 1).expect("end");
        assert_eq!(end, Some(u64::from(T0) + 20));
        fs::write(d.join("1.dat"), [0u8; 3]).expect("dat");
        assert_eq!(end_time(Storage::Fixed, d, 1).expect("end"), None);
        fs::write(d.join("1.meta"), [0u8; 12]).expect("meta");
        assert!(matches!(
            end_time(Storage::Fixed, d, 1),
            Err(StorageError::CorruptMeta { .. })
        ));
        assert!(matches!(
            end_time(Storage::Fixed, d, 2),
            Err(StorageError::Io { .. })
        ));
    }

    #[test]
    fn variable_end_time_is_the_last_whole_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut bytes = Vec::new();
        for t in [5, 9] {
            variable::encode_record(t, 1.0, &mut bytes);
        }
        bytes.extend_from_slice(&[0xF9, 1, 2]);
        fs::write(d.join("feed_2.MYD"), &bytes).expect("write");
        assert_eq!(end_time(Storage::Variable, d, 2).expect("end"), Some(9));
        fs::write(d.join("feed_2.MYD"), [0xF9, 1]).expect("write");
        assert_eq!(end_time(Storage::Variable, d, 2).expect("end"), None);
        assert!(end_time(Storage::Variable, d, 3).is_err());
    }

    #[test]
    fn end_times_of_files_emoncms_wrote() {
        let (fina, ts) = (reference("phpfina"), reference("phptimeseries"));
        let fixed_end = end_time(Storage::Fixed, &fina, 7).expect("end");
        assert_eq!(fixed_end, Some(1_699_747_200 + 3600 * 95));
        assert_eq!(end_time(Storage::Fixed, &fina, 4).expect("end"), None);
        let variable_end = end_time(Storage::Variable, &ts, 2).expect("end");
        assert_eq!(variable_end, Some(1_699_999_200 + 610));
    }

    #[test]
    fn the_encoders_reproduce_files_emoncms_wrote() {
        let meta = fs::read(reference("phpfina").join("7.meta")).expect("meta");
        assert_eq!(meta, fixed::encode_meta(3600, 1_699_747_200));

        let ts = reference("phptimeseries");
        let (points, size) = read_variable(&ts, 2).expect("read");
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = variable::file_path(dir.path(), 2);
        let mut w = VariableFileWriter::create(&ours).expect("create");
        for (t, v) in points {
            w.push(i64::from(t), f64::from(v)).expect("push");
        }
        assert_eq!(w.finish().expect("finish"), size);
        let written = fs::read(&ours).expect("ours");
        assert_eq!(written, fs::read(ts.join("feed_2.MYD")).expect("theirs"));
    }

    #[test]
    fn streamed_points_make_a_file_the_engine_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = variable::file_path(dir.path(), 3);
        let mut w = VariableFileWriter::create(&path).expect("create");
        w.push(i64::from(T0), 1.5).expect("push");
        w.push(i64::from(T0) + 10, f64::NAN).expect("push");
        w.push(i64::from(T0) + 20, -2.0).expect("push");
        assert!(matches!(
            w.push(-1, 0.0),
            Err(StorageError::TimeOutOfRange { time: -1, .. })
        ));
        assert!(matches!(
            w.push(i64::from(u32::MAX) + 1, 0.0),
            Err(StorageError::TimeOutOfRange { .. })
        ));
        assert_eq!(w.finish().expect("finish"), 27);
        let bytes = fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 27);
        assert_eq!(bytes[..5], [0xF9, 0x00, 0xF1, 0x53, 0x65]);

        let feed = VariableFeed::open(dir.path(), 3).expect("open");
        let points = feed.read_range(0, u32::MAX).expect("read");
        assert_eq!(points.len(), 3);
        assert_eq!(points[0], (T0, 1.5));
        assert!(points[1].1.is_nan());
        assert_eq!(points[2], (T0 + 20, -2.0));

        let (read, size) = read_variable(dir.path(), 3).expect("read");
        assert_eq!(size, 27);
        assert_eq!(read.len(), 3);
        assert_eq!(read[2], (T0 + 20, -2.0));
    }

    #[test]
    fn a_variable_feed_without_a_file_has_no_points() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (points, size) = read_variable(dir.path(), 9).expect("read");
        assert!(points.is_empty());
        assert_eq!(size, 0);
    }
}
