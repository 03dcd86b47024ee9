//! Record batches and schemas across the boundary, through the Arrow C Data Interface
//! (arrow-rs's `ffi` module). Used by the library side (SDK shims) and the host side (the
//! engine's adapter) alike, so both agree on the conventions:
//!
//! * a batch crosses as a struct [`ArrowArray`] plus an [`ArrowSchema`] of the batch's schema
//!   (with the schema's metadata);
//! * the receiver checks the data type against the schema it was declared, and then uses the
//!   declared `SchemaRef`, so batches keep the exact schema (and metadata) of their stream.
//!
//! No data is copied: buffers stay where they were allocated, and their release callback
//! returns them to the side that allocated them.

use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi_and_data_type};
use arrow_array::{Array, RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use pipe_plugin_abi::{ArrowArray, ArrowSchema};

// Our declarations and arrow-rs's must be the same C structs.
const _: () = assert!(std::mem::size_of::<FFI_ArrowArray>() == std::mem::size_of::<ArrowArray>());
const _: () = assert!(std::mem::size_of::<FFI_ArrowSchema>() == std::mem::size_of::<ArrowSchema>());

/// Exports `schema` into `out` (moved to the receiver, who releases it).
///
/// # Safety
/// `out` must be valid for writes and hold no live schema (it is overwritten, not released).
pub unsafe fn export_schema(schema: &Schema, out: *mut ArrowSchema) -> Result<(), ArrowError> {
    let ffi = FFI_ArrowSchema::try_from(schema)?;
    // SAFETY: same layout (asserted above); `out` is writable per the contract.
    unsafe { std::ptr::write(out.cast::<FFI_ArrowSchema>(), ffi) };
    Ok(())
}

/// Imports a schema that stays owned by the caller (borrowed).
///
/// # Safety
/// `schema` must point to a valid, unreleased `ArrowSchema` for the duration of the call.
pub unsafe fn schema_from_borrowed(schema: *const ArrowSchema) -> Result<Schema, ArrowError> {
    // SAFETY: same layout; we only read through the reference.
    let ffi = unsafe { &*schema.cast::<FFI_ArrowSchema>() };
    Schema::try_from(ffi)
}

/// Imports a schema that was moved to us, releasing it afterwards.
///
/// # Safety
/// `schema` must point to a valid `ArrowSchema` we own; it is left released.
pub unsafe fn schema_from_owned(schema: *mut ArrowSchema) -> Result<Schema, ArrowError> {
    // SAFETY: same layout; from_raw moves the struct out and leaves a released one behind.
    let ffi = unsafe { FFI_ArrowSchema::from_raw(schema.cast::<FFI_ArrowSchema>()) };
    Schema::try_from(&ffi)
}

/// Exports `batch` into `array_out` + `schema_out` (both moved to the receiver).
///
/// # Safety
/// Both pointers must be valid for writes and hold nothing live (they are overwritten).
pub unsafe fn export_batch(
    batch: &RecordBatch,
    array_out: *mut ArrowArray,
    schema_out: *mut ArrowSchema,
) -> Result<(), ArrowError> {
    let ffi_schema = FFI_ArrowSchema::try_from(batch.schema().as_ref())?;
    let data = StructArray::from(batch.clone()).into_data();
    let ffi_array = FFI_ArrowArray::new(&data);
    // SAFETY: same layouts; both outputs are writable per the contract.
    unsafe {
        std::ptr::write(array_out.cast::<FFI_ArrowArray>(), ffi_array);
        std::ptr::write(schema_out.cast::<FFI_ArrowSchema>(), ffi_schema);
    }
    Ok(())
}

/// Imports a batch whose array was moved to us (it is left released) and whose schema is
/// borrowed. When the batch's type equals `declared`'s, the batch gets `declared` itself.
/// Errors: [`ArrowError`] when the schema is unreadable, or the data fails Arrow's full
/// validation (buffer sizes, offsets, child lengths, UTF-8): nothing invalid is handed on.
///
/// # Safety
/// `array` must point to a valid `ArrowArray` we own, `schema` to a valid borrowed
/// `ArrowSchema` describing it.
pub unsafe fn import_batch(
    array: *mut ArrowArray,
    schema: *const ArrowSchema,
    declared: Option<&SchemaRef>,
) -> Result<RecordBatch, ArrowError> {
    // Take ownership first, so the array is released even if the schema is unreadable.
    // SAFETY: same layout; from_raw moves the struct out and leaves a released one behind.
    let ffi_array = unsafe { FFI_ArrowArray::from_raw(array.cast::<FFI_ArrowArray>()) };
    if ffi_array.is_released() {
        return Err(ArrowError::CDataInterface("the batch's array was already released".into()));
    }
    // SAFETY: borrowed schema per the contract.
    let sent = unsafe { schema_from_borrowed(schema) }?;
    let schema: SchemaRef = match declared {
        Some(d) if d.fields() == sent.fields() => d.clone(),
        _ => Arc::new(sent),
    };
    let struct_type = DataType::Struct(schema.fields().clone());
    // SAFETY: the data type is the one the producer described the array with (checked above
    // when the declared schema is used instead of the sent one).
    let data = unsafe { from_ffi_and_data_type(ffi_array, struct_type) }?;
    // The other side's buffers are not ours to trust: offsets past the end of a buffer, a
    // child shorter than its parent or invalid UTF-8 would be undefined behaviour (or a panic)
    // in whatever reads them next. Full validation turns them into this call's error.
    data.validate_full()?;
    let rows = data.len();
    let (_, columns, nulls) = StructArray::from(data).into_parts();
    if nulls.is_some_and(|n| n.null_count() > 0) {
        return Err(ArrowError::CDataInterface("a batch's top-level struct array has nulls".into()));
    }
    RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows)))
}

/// Imports a batch from an event: the array and schema were both moved to us (both are left
/// released).
///
/// # Safety
/// Both must point to valid structs we own.
pub unsafe fn import_owned_batch(
    array: *mut ArrowArray,
    schema: *mut ArrowSchema,
    declared: Option<&SchemaRef>,
) -> Result<RecordBatch, ArrowError> {
    // SAFETY: we own the schema; it is released when `owned` drops, after the import.
    let owned = unsafe { FFI_ArrowSchema::from_raw(schema.cast::<FFI_ArrowSchema>()) };
    // SAFETY: we own the array; the schema stays alive for the call.
    unsafe { import_batch(array, (&owned as *const FFI_ArrowSchema).cast::<ArrowSchema>(), declared) }
}
