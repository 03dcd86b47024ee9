//! Arrow 60 (pipe's SDK) → arrow 59 (delta-rs) through the Arrow C Data Interface.
//!
//! The two arrow-rs majors are distinct Rust crates whose types never mix, but both implement
//! the same C ABI (`struct ArrowArray` / `struct ArrowSchema`, <https://arrow.apache.org/docs/format/CDataInterface.html>).
//! A batch is exported by arrow 60 as a struct array and imported by arrow 59 from the very
//! same C structs: the buffers are shared, not copied, and freed by their `release` callback
//! once the last arrow-59 reference goes away.
//!
//! The only `unsafe` is the FFI itself: reinterpreting arrow 60's `#[repr(C)]` FFI structs as
//! arrow 59's (identical layout: both are the C Data Interface structs, and `transmute` checks
//! the sizes at compile time) and arrow 59's `from_ffi`, whose contract (a valid, exported,
//! not yet released array of that schema) the export just above fulfils.

use std::sync::Arc;

use arrow_array_59 as a59;
use arrow_array_60 as a60;
use arrow_schema_59 as s59;
use arrow_schema_60 as s60;

use a60::Array as _;

/// Arrow 60 schema → the same schema in arrow 59.
pub fn schema_to_59(schema: &s60::Schema) -> Result<s59::Schema, String> {
    let exported = s60::ffi::FFI_ArrowSchema::try_from(schema).map_err(|e| format!("exporting the schema: {e}"))?;
    // SAFETY: both types are the C Data Interface's `struct ArrowSchema` (`#[repr(C)]`); the
    // value moves, so its release callback runs exactly once (in arrow 59's drop).
    let imported: s59::ffi::FFI_ArrowSchema =
        unsafe { std::mem::transmute::<s60::ffi::FFI_ArrowSchema, s59::ffi::FFI_ArrowSchema>(exported) };
    s59::Schema::try_from(&imported).map_err(|e| format!("importing the schema: {e}"))
}

/// Arrow 60 record batch → arrow 59 record batch, sharing the buffers.
pub fn batch_to_59(batch: &a60::RecordBatch) -> Result<a59::RecordBatch, String> {
    let schema = Arc::new(schema_to_59(batch.schema_ref())?);
    let data = a60::StructArray::from(batch.clone()).into_data();
    let (array, ffi_schema) = a60::ffi::to_ffi(&data).map_err(|e| format!("exporting a batch: {e}"))?;
    // SAFETY: as in `schema_to_59`: the C Data Interface structs, moved (released once).
    let array: a59::ffi::FFI_ArrowArray =
        unsafe { std::mem::transmute::<a60::ffi::FFI_ArrowArray, a59::ffi::FFI_ArrowArray>(array) };
    let ffi_schema: s59::ffi::FFI_ArrowSchema =
        unsafe { std::mem::transmute::<s60::ffi::FFI_ArrowSchema, s59::ffi::FFI_ArrowSchema>(ffi_schema) };
    // SAFETY: `array` was just exported by arrow 60 with exactly `ffi_schema` and is not released.
    let imported = unsafe { a59::ffi::from_ffi(array, &ffi_schema) }.map_err(|e| format!("importing a batch: {e}"))?;
    let columns = a59::StructArray::from(imported).into_parts().1;
    a59::RecordBatch::try_new_with_options(
        schema,
        columns,
        &a59::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| format!("rebuilding a batch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use a59::Array as _;

    #[test]
    fn batch_crosses_without_copy() {
        let schema = Arc::new(s60::Schema::new(vec![
            s60::Field::new("id", s60::DataType::Utf8, false),
            s60::Field::new("n", s60::DataType::UInt32, true),
        ]));
        let ids = a60::StringArray::from(vec!["a", "b", "c"]);
        let values_ptr = ids.values().as_ptr();
        let batch = a60::RecordBatch::try_new(
            schema,
            vec![Arc::new(ids), Arc::new(a60::UInt32Array::from(vec![Some(1), None, Some(3)]))],
        )
        .unwrap();
        let out = batch_to_59(&batch).unwrap();
        assert_eq!(out.num_rows(), 3);
        assert_eq!(out.schema().field(0).name(), "id");
        assert!(!out.schema().field(0).is_nullable());
        let ids59 = out.column(0).as_any().downcast_ref::<a59::StringArray>().unwrap();
        assert_eq!(ids59.value(2), "c");
        assert_eq!(ids59.values().as_ptr(), values_ptr, "the buffer is shared, not copied");
        let n = out.column(1).as_any().downcast_ref::<a59::UInt32Array>().unwrap();
        assert!(n.is_null(1));
        assert_eq!(n.value(2), 3);
    }

    #[test]
    fn canonical_schemas_cross() {
        for stream in [pipe_plugin_sdk::schema::MESSAGES, pipe_plugin_sdk::schema::CONVERSATIONS] {
            let s60 = pipe_plugin_sdk::schema::canonical_schema(stream).unwrap();
            let s59 = schema_to_59(&s60).unwrap();
            assert_eq!(s59.fields().len(), s60.fields().len());
            for (a, b) in s59.fields().iter().zip(s60.fields().iter()) {
                assert_eq!(a.name(), b.name());
                assert_eq!(a.is_nullable(), b.is_nullable());
                assert_eq!(format!("{}", a.data_type()), format!("{}", b.data_type()));
            }
        }
    }
}
