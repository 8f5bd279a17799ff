//! A loaded program's trace maps (filter, buckets, events), found through its map ids;
//! and, for the benchmark, tracing switched on or off in a loaded, unattached datapath.

use aya::maps::{Array, Map, MapData};
use lvs_ebpf_common::{TraceFilter, map_names};

use super::kernel;
use crate::error::{Error, Result};

/// The trace maps of a loaded program (filter, buckets, events), found by its map ids;
/// `None` for a program without them (built before tracing existed).
pub(super) fn trace_maps(
    prog: &aya::programs::ProgramInfo,
) -> Result<Option<(MapData, MapData, MapData)>> {
    let ids = prog
        .map_ids()
        .map_err(|e| kernel(format!("reading the program's maps: {e}")))?
        .unwrap_or_default();
    let (mut filter_map, mut bucket, mut events) = (None, None, None);
    for id in ids {
        let Ok(m) = MapData::from_id(id) else {
            continue;
        };
        let name = m
            .info()
            .ok()
            .and_then(|i| i.name_as_str().map(str::to_owned));
        match name.as_deref() {
            Some(map_names::TRACE) => filter_map = Some(m),
            Some(map_names::TRACE_BUCKET) => bucket = Some(m),
            Some(map_names::TRACE_EVENTS) => events = Some(m),
            _ => {}
        }
    }
    Ok(filter_map
        .zip(bucket)
        .zip(events)
        .map(|((f, b), e)| (f, b, e)))
}

/// For the benchmark: the trace state of a loaded (unattached) datapath: `Some(filter)`
/// turns tracing on with it (the lease set far ahead), `None` turns it off.
pub fn bench_set(dp: &mut crate::datapath::Datapath, filter: Option<TraceFilter>) -> Result<()> {
    let id = dp.program_id()?;
    let prog = aya::programs::loaded_programs()
        .filter_map(std::result::Result::ok)
        .find(|p| p.id() == id)
        .ok_or_else(|| kernel("the loaded program is gone"))?;
    let (f, _, _) = trace_maps(&prog)?.ok_or_else(|| kernel("no trace maps"))?;
    let mut f: Array<MapData, TraceFilter> =
        Array::try_from(Map::Array(f)).map_err(|e| Error::map(map_names::TRACE, "open", e))?;
    let value = filter.map_or_else(TraceFilter::default, |mut x| {
        x.expires_ns = u64::MAX;
        x
    });
    f.set(0, value, 0)
        .map_err(|e| Error::map(map_names::TRACE, "write", e))?;
    dp.maps.set_trace_switch(u32::from(filter.is_some()))
}
