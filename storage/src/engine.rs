//! emoncms's feed engine ids, as its catalog stores them (`feeds.engine`) and its API takes
//! them (`feed/create?engine=`): the one definition every crate uses.

/// A feed engine ynni accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Engine {
    /// emoncms's MySQL engine (hidden in its UI, still accepted by its API). ynni keeps such a
    /// feed's (time, value) rows in a variable-interval file, which holds the same data.
    Mysql = 0,
    /// PHPTimeSeries: a (time, value) record per point.
    Variable = 2,
    /// PHPFina: one value per fixed interval.
    Fixed = 5,
    /// Computed from a process list when read; no data of its own.
    Virtual = 7,
}

impl Engine {
    /// The engine of id `id`, or `None` for an id ynni does not support.
    pub fn from_id(id: i64) -> Option<Self> {
        Some(match id {
            0 => Self::Mysql,
            2 => Self::Variable,
            5 => Self::Fixed,
            7 => Self::Virtual,
            _ => return None,
        })
    }

    /// emoncms's id of the engine.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The file format that holds the feed's points, or `None` for a virtual feed.
    pub fn storage(self) -> Option<Storage> {
        match self {
            Self::Fixed => Some(Storage::Fixed),
            Self::Variable | Self::Mysql => Some(Storage::Variable),
            Self::Virtual => None,
        }
    }
}

/// The two on-disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// PHPFina (`phpfina/<id>.meta` and `.dat`).
    Fixed,
    /// PHPTimeSeries (`phptimeseries/feed_<id>.MYD`).
    Variable,
}

impl Storage {
    /// The engine id the shard and WAL records use for this format.
    pub fn engine(self) -> Engine {
        match self {
            Self::Fixed => Engine::Fixed,
            Self::Variable => Engine::Variable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_refused() {
        for e in [
            Engine::Mysql,
            Engine::Variable,
            Engine::Fixed,
            Engine::Virtual,
        ] {
            assert_eq!(Engine::from_id(i64::from(e.id())), Some(e));
        }
        for id in [-1, 1, 3, 4, 6, 8, 255, i64::MAX] {
            assert_eq!(Engine::from_id(id), None);
        }
        assert_eq!(Engine::Mysql.storage(), Some(Storage::Variable));
        assert_eq!(Engine::Virtual.storage(), None);
        assert_eq!(Storage::Fixed.engine().id(), 5);
    }
}
