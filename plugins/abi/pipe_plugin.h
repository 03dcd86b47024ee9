/*
 * pipe_plugin.h: the C ABI between `pipe` and plugins loaded as dynamic libraries, version 1.
 *
 * Hand-written twin of the Rust crate `pipe-plugin-abi` (plugins/abi/src/lib.rs), which is
 * normative; `cargo test -p pipe-plugin-abi` compiles this header against sizes and offsets
 * printed by the Rust side, so the two cannot drift.
 *
 * Rules (see lib.rs for the full text):
 *  - A library exports exactly `pipe_plugin_abi_version` (checked first) and
 *    `pipe_plugin_init_v1`.
 *  - Every struct starts with `struct_size` and only grows by appending fields.
 *  - All calls block; calls on one instance are serialised by the host, except `cancel`.
 *  - Strings in are borrowed PipeStr; error strings out are owned by the library and freed
 *    with PipeLibraryV1.free_string.
 *  - ArrowArray/ArrowSchema out-params are moved to the caller. An ArrowArray passed in by
 *    pointer is moved to the callee, which leaves it released; if the call fails before taking
 *    it, the caller still owns it. An ArrowSchema passed as `const*` is borrowed.
 *  - No unwinding or C++ exception may cross the boundary.
 */
#ifndef PIPE_PLUGIN_H
#define PIPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PIPE_ABI_VERSION 1u

#define PIPE_SYMBOL_ABI_VERSION "pipe_plugin_abi_version"
#define PIPE_SYMBOL_INIT_V1 "pipe_plugin_init_v1"

/* Status codes. */
#define PIPE_OK 0
#define PIPE_ERROR 1
#define PIPE_ERROR_CONFIG 2
#define PIPE_ERROR_CANCELLED 3
#define PIPE_ERROR_PANIC 4
#define PIPE_ERROR_RETRYABLE 5
#define PIPE_ERROR_ABI 6

/* Plugin kinds. */
#define PIPE_KIND_SOURCE 1u
#define PIPE_KIND_TRANSFORM 2u
#define PIPE_KIND_SINK 3u

/* Event kinds. */
#define PIPE_EVENT_NONE 0u
#define PIPE_EVENT_BATCH 1u
#define PIPE_EVENT_DEAD_LETTER 2u
#define PIPE_EVENT_CHECKPOINT 3u
#define PIPE_EVENT_END 4u

/* Log levels. */
#define PIPE_LOG_ERROR 1u
#define PIPE_LOG_WARN 2u
#define PIPE_LOG_INFO 3u
#define PIPE_LOG_DEBUG 4u
#define PIPE_LOG_TRACE 5u

/* Arrow C Data Interface, verbatim from the Arrow specification. */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;
  void (*release)(struct ArrowSchema*);
  void* private_data;
};

struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;
  void (*release)(struct ArrowArray*);
  void* private_data;
};

#endif /* ARROW_C_DATA_INTERFACE */

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE

struct ArrowArrayStream {
  int (*get_schema)(struct ArrowArrayStream*, struct ArrowSchema* out);
  int (*get_next)(struct ArrowArrayStream*, struct ArrowArray* out);
  const char* (*get_last_error)(struct ArrowArrayStream*);
  void (*release)(struct ArrowArrayStream*);
  void* private_data;
};

#endif /* ARROW_C_STREAM_INTERFACE */

/* A borrowed UTF-8 string, not NUL-terminated; ptr may be NULL when len is 0. */
typedef struct PipeStr {
  const uint8_t* ptr;
  size_t len;
} PipeStr;

/* Filled by a failing call; strings owned by the library (free with free_string). */
typedef struct PipeError {
  uint32_t struct_size;
  int32_t code;
  char* message;
  char* config_path;
} PipeError;

typedef struct PipeHostApiV1 {
  uint32_t struct_size;
  uint32_t abi_version;
  const char* host_version;
  void (*log)(uint32_t level, PipeStr target, PipeStr message);
  uint32_t max_log_level;
  uint32_t worker_threads;
} PipeHostApiV1;

struct PipePluginDescV1;
struct PipeSourceVTableV1;
struct PipeTransformVTableV1;
struct PipeSinkVTableV1;

typedef struct PipeLibraryV1 {
  uint32_t abi_version;
  uint32_t struct_size;
  const char* build_info;
  const char* library_name;
  const char* library_version;
  size_t n_plugins;
  const struct PipePluginDescV1* plugins;
  void (*free_string)(char* s);
} PipeLibraryV1;

typedef struct PipePluginDescV1 {
  uint32_t struct_size;
  uint32_t kind;
  const char* name;
  const char* version;
  const char* description;
  const char* config_schema_json;
  int32_t (*check_config)(const struct PipePluginDescV1* plugin, PipeStr config_json, PipeError* err);
  const struct PipeSourceVTableV1* source;
  const struct PipeTransformVTableV1* transform;
  const struct PipeSinkVTableV1* sink;
} PipePluginDescV1;

typedef struct PipeSourceOpenArgsV1 {
  uint32_t struct_size;
  PipeStr pipeline;
  PipeStr config_json;
  PipeStr state_json; /* empty on a first run */
  int64_t limit;      /* negative: no limit */
} PipeSourceOpenArgsV1;

typedef struct PipeStreamV1 {
  PipeStr name;
  const struct ArrowSchema* schema;
} PipeStreamV1;

typedef struct PipeSinkOpenArgsV1 {
  uint32_t struct_size;
  PipeStr pipeline;
  PipeStr config_json;
  PipeStr run_id;
  const PipeStreamV1* streams;
  size_t n_streams;
} PipeSinkOpenArgsV1;

typedef struct PipeTransformOpenArgsV1 {
  uint32_t struct_size;
  PipeStr pipeline;
  PipeStr config_json;
} PipeTransformOpenArgsV1;

typedef struct PipeEventV1 {
  uint32_t struct_size;
  uint32_t kind;
  PipeStr stream; /* borrowed until the next call on the instance */
  PipeStr json;   /* borrowed until the next call on the instance */
  struct ArrowArray array;   /* moved to the caller */
  struct ArrowSchema schema; /* moved to the caller */
} PipeEventV1;

typedef struct PipeSourceCountersV1 {
  uint32_t struct_size;
  uint64_t requests;
  uint64_t retries;
  uint64_t conversations;
  uint64_t messages;
  uint64_t throttled_until_ms; /* gauge: 0 when not throttled */
} PipeSourceCountersV1;

typedef struct PipeSinkStatsV1 {
  uint32_t struct_size;
  uint64_t files;
  uint64_t bytes;
  uint64_t rows;
} PipeSinkStatsV1;

typedef struct PipeSourceVTableV1 {
  uint32_t struct_size;
  int32_t (*open)(const PipePluginDescV1* plugin, const PipeSourceOpenArgsV1* args, void** out, PipeError* err);
  int32_t (*stream_count)(void* h, size_t* out, PipeError* err);
  int32_t (*stream)(void* h, size_t index, PipeStr* name, struct ArrowSchema* schema, PipeError* err);
  int32_t (*next_event)(void* h, PipeEventV1* out, PipeError* err);
  int32_t (*counters)(void* h, PipeSourceCountersV1* out);
  void (*cancel)(void* h);
  void (*close)(void* h);
} PipeSourceVTableV1;

typedef struct PipeTransformVTableV1 {
  uint32_t struct_size;
  int32_t (*open)(const PipePluginDescV1* plugin, const PipeTransformOpenArgsV1* args, void** out, PipeError* err);
  int32_t (*output_stream)(void* h, PipeStr name, const struct ArrowSchema* input, struct ArrowSchema* out,
                           uint32_t* touched, PipeError* err);
  int32_t (*transform)(void* h, PipeStr stream, struct ArrowArray* array, const struct ArrowSchema* schema,
                       PipeError* err);
  int32_t (*flush)(void* h, PipeError* err);
  int32_t (*next_output)(void* h, PipeEventV1* out, PipeError* err);
  void (*cancel)(void* h);
  void (*close)(void* h);
} PipeTransformVTableV1;

typedef struct PipeSinkVTableV1 {
  uint32_t struct_size;
  int32_t (*open)(const PipePluginDescV1* plugin, const PipeSinkOpenArgsV1* args, void** out, PipeError* err);
  int32_t (*write)(void* h, PipeStr stream, struct ArrowArray* array, const struct ArrowSchema* schema,
                   PipeError* err);
  int32_t (*commit)(void* h, PipeStr checkpoint_json, PipeError* err);
  int32_t (*abort)(void* h, PipeError* err);
  int32_t (*stats)(void* h, PipeSinkStatsV1* out);
  void (*cancel)(void* h);
  void (*close)(void* h);
} PipeSinkVTableV1;

/* The two symbols a plugin library exports. */
uint32_t pipe_plugin_abi_version(void);
int32_t pipe_plugin_init_v1(const PipeHostApiV1* host, const PipeLibraryV1** out, PipeError* err);

#ifdef __cplusplus
}
#endif

#endif /* PIPE_PLUGIN_H */
