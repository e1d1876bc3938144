//! The flag set: how it is loaded into an isolate and kept fresh (`live`), how it is laid
//! out in KV and the writer (`store`), how every change is decided by the one writer
//! (`control`), what the admin API accepts (`admin`), and OFREP's request bodies and ETags
//! (`ofrep`).

pub(crate) mod admin;
pub(crate) mod control;
pub(crate) mod live;
pub(crate) mod ofrep;
pub(crate) mod store;
