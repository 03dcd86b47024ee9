/*
 * c_upper: a pipe transform plugin written in C against pipe_plugin.h, to prove the plugin
 * boundary is plain C (no Rust on this side). It upper-cases (ASCII) one utf8 column of every
 * batch that has it — `text` unless the config says `{"column": "<name>"}` — through the Arrow
 * C Data Interface: the output batch shares every buffer of the input except the new
 * upper-cased character data, and keeps the input alive until the host releases the output.
 *
 * Build: gcc -shared -fPIC -std=c11 -Wall -Wextra -Werror -I plugins/abi \
 *            -o libc_upper.so tests/plugins/c_upper/upper.c
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pipe_plugin.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static char* dup_n(const char* s, size_t n) {
  char* d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static char* dup_str(const char* s) { return s ? dup_n(s, strlen(s)) : NULL; }

static void free_string(char* s) { free(s); }

static int32_t fail(PipeError* err, int32_t code, const char* message, const char* path) {
  if (err) {
    err->code = code;
    err->message = dup_str(message);
    err->config_path = dup_str(path);
  }
  return code;
}

/* ---- ArrowSchema deep copy (the host's schema is only borrowed) -------------------------- */

static size_t metadata_len(const char* m) {
  if (!m) return 0;
  int32_t n, len;
  size_t pos = 4;
  memcpy(&n, m, 4);
  for (int32_t i = 0; i < n; i++) {
    memcpy(&len, m + pos, 4); /* key */
    pos += 4 + (size_t)len;
    memcpy(&len, m + pos, 4); /* value */
    pos += 4 + (size_t)len;
  }
  return pos;
}

static void release_schema(struct ArrowSchema* s) {
  free((void*)s->format);
  free((void*)s->name);
  free((void*)s->metadata);
  for (int64_t i = 0; i < s->n_children; i++) {
    if (s->children[i]->release) s->children[i]->release(s->children[i]);
    free(s->children[i]);
  }
  free(s->children);
  if (s->dictionary) {
    if (s->dictionary->release) s->dictionary->release(s->dictionary);
    free(s->dictionary);
  }
  s->release = NULL;
}

static int copy_schema(const struct ArrowSchema* in, struct ArrowSchema* out) {
  memset(out, 0, sizeof *out);
  out->format = dup_str(in->format);
  out->name = dup_str(in->name);
  size_t mlen = metadata_len(in->metadata);
  if (mlen) {
    char* m = malloc(mlen);
    memcpy(m, in->metadata, mlen);
    out->metadata = m;
  }
  out->flags = in->flags;
  out->release = release_schema;
  if (in->n_children > 0) {
    out->children = calloc((size_t)in->n_children, sizeof(struct ArrowSchema*));
    for (int64_t i = 0; i < in->n_children; i++) {
      out->children[i] = malloc(sizeof(struct ArrowSchema));
      copy_schema(in->children[i], out->children[i]);
      out->n_children = i + 1; /* so a partial copy still releases cleanly */
    }
  }
  if (in->dictionary) {
    out->dictionary = malloc(sizeof(struct ArrowSchema));
    copy_schema(in->dictionary, out->dictionary);
  }
  return 0;
}

/* Index of the utf8 child `column` of a struct schema, or -1. */
static int64_t find_column(const struct ArrowSchema* schema, const char* column) {
  for (int64_t i = 0; i < schema->n_children; i++) {
    const struct ArrowSchema* c = schema->children[i];
    if (c->name && strcmp(c->name, column) == 0 && strcmp(c->format, "u") == 0) return i;
  }
  return -1;
}

/* ---- the output batch: input moved in, one child replaced -------------------------------- */

typedef struct UpperBatch {
  struct ArrowArray input;     /* the host's batch, owned until we are released */
  struct ArrowArray upper;     /* the replaced child */
  struct ArrowArray** children;
} UpperBatch;

static void release_upper_child(struct ArrowArray* a) {
  free((void*)a->buffers[2]);
  free(a->buffers);
  a->release = NULL;
}

static void release_batch(struct ArrowArray* a) {
  UpperBatch* b = a->private_data;
  if (b->upper.release) b->upper.release(&b->upper);
  if (b->input.release) b->input.release(&b->input);
  free(b->children);
  free(b);
  a->release = NULL;
}

/* Moves `in` into `out`, with child `col` upper-cased. */
static void upper_batch(struct ArrowArray* in, int64_t col, struct ArrowArray* out) {
  UpperBatch* b = calloc(1, sizeof *b);
  b->input = *in;
  in->release = NULL; /* taken */
  const struct ArrowArray* src = b->input.children[col];
  const int32_t* offsets = src->buffers[1];
  size_t end = offsets ? (size_t)offsets[src->offset + src->length] : 0;
  char* data = malloc(end ? end : 1);
  if (end) memcpy(data, src->buffers[2], end);
  for (size_t i = 0; i < end; i++) {
    unsigned char ch = (unsigned char)data[i];
    if (ch < 0x80) data[i] = (char)toupper(ch); /* bytes >= 0x80 are UTF-8 sequences: kept */
  }
  b->upper = *src;
  const void** buffers = malloc(3 * sizeof(void*));
  buffers[0] = src->buffers[0]; /* validity: shared */
  buffers[1] = src->buffers[1]; /* offsets: shared */
  buffers[2] = data;
  b->upper.buffers = buffers;
  b->upper.n_children = 0;
  b->upper.children = NULL;
  b->upper.dictionary = NULL;
  b->upper.release = release_upper_child;
  b->upper.private_data = NULL;
  b->children = malloc((size_t)b->input.n_children * sizeof(struct ArrowArray*));
  for (int64_t i = 0; i < b->input.n_children; i++) b->children[i] = i == col ? &b->upper : b->input.children[i];
  *out = b->input; /* length, null_count, offset, validity buffer */
  out->children = b->children;
  out->dictionary = NULL;
  out->release = release_batch;
  out->private_data = b;
}

/* ---- the transform instance --------------------------------------------------------------- */

typedef struct Upper {
  char column[128];
  char* stream;               /* name of the pending output, borrowed by the host */
  int has_pending;
  struct ArrowArray pending_array;
  struct ArrowSchema pending_schema;
} Upper;

/* Reads {"column": "<name>"} from a flat JSON object; anything else must be an object. */
static int32_t parse_config(PipeStr json, char* column, size_t cap, PipeError* err) {
  char* text = dup_n((const char*)json.ptr, json.len);
  const char* p = text;
  while (*p && isspace((unsigned char)*p)) p++;
  if (*p != '{') {
    free(text);
    return fail(err, PIPE_ERROR_CONFIG, "the c_upper table must be a table (a JSON object)", "");
  }
  strcpy(column, "text");
  const char* key = strstr(p, "\"column\"");
  if (key) {
    const char* q = strchr(key + 8, ':');
    const char* open = q ? strchr(q, '"') : NULL;
    const char* close = open ? strchr(open + 1, '"') : NULL;
    if (!close || (size_t)(close - open - 1) >= cap || close == open + 1) {
      free(text);
      return fail(err, PIPE_ERROR_CONFIG, "must be a non-empty column name (a string)", "column");
    }
    memcpy(column, open + 1, (size_t)(close - open - 1));
    column[close - open - 1] = '\0';
  }
  free(text);
  return PIPE_OK;
}

static int32_t check_config(const PipePluginDescV1* plugin, PipeStr config_json, PipeError* err) {
  (void)plugin;
  char column[128];
  return parse_config(config_json, column, sizeof column, err);
}

static int32_t t_open(const PipePluginDescV1* plugin, const PipeTransformOpenArgsV1* args, void** out, PipeError* err) {
  (void)plugin;
  Upper* u = calloc(1, sizeof *u);
  int32_t rc = parse_config(args->config_json, u->column, sizeof u->column, err);
  if (rc != PIPE_OK) {
    free(u);
    return rc;
  }
  *out = u;
  return PIPE_OK;
}

static int32_t t_output_stream(void* h, PipeStr name, const struct ArrowSchema* input, struct ArrowSchema* out,
                               uint32_t* touched, PipeError* err) {
  (void)name;
  (void)err;
  Upper* u = h;
  *touched = find_column(input, u->column) >= 0;
  if (*touched) copy_schema(input, out);
  return PIPE_OK;
}

static void drop_pending(Upper* u) {
  if (!u->has_pending) return;
  if (u->pending_array.release) u->pending_array.release(&u->pending_array);
  if (u->pending_schema.release) u->pending_schema.release(&u->pending_schema);
  u->has_pending = 0;
}

static int32_t t_transform(void* h, PipeStr stream, struct ArrowArray* array, const struct ArrowSchema* schema,
                           PipeError* err) {
  Upper* u = h;
  int64_t col = find_column(schema, u->column);
  if (col < 0 || array->n_children != schema->n_children)
    return fail(err, PIPE_ERROR, "c_upper: a batch without the configured utf8 column", NULL);
  drop_pending(u);
  free(u->stream);
  u->stream = dup_n((const char*)stream.ptr, stream.len);
  upper_batch(array, col, &u->pending_array);
  copy_schema(schema, &u->pending_schema);
  u->has_pending = 1;
  return PIPE_OK;
}

static int32_t t_flush(void* h, PipeError* err) {
  (void)h;
  (void)err;
  return PIPE_OK; /* nothing is buffered across batches */
}

static int32_t t_next_output(void* h, PipeEventV1* out, PipeError* err) {
  (void)err;
  Upper* u = h;
  if (!u->has_pending) {
    out->kind = PIPE_EVENT_NONE;
    return PIPE_OK;
  }
  out->kind = PIPE_EVENT_BATCH;
  out->stream.ptr = (const uint8_t*)u->stream;
  out->stream.len = strlen(u->stream);
  out->json.ptr = NULL;
  out->json.len = 0;
  out->array = u->pending_array; /* both moved to the host */
  out->schema = u->pending_schema;
  u->has_pending = 0;
  return PIPE_OK;
}

static void t_cancel(void* h) { (void)h; /* every call returns at once: nothing to interrupt */ }

static void t_close(void* h) {
  Upper* u = h;
  drop_pending(u);
  free(u->stream);
  free(u);
}

/* ---- the library ------------------------------------------------------------------------- */

static const PipeTransformVTableV1 VTABLE = {
    sizeof(PipeTransformVTableV1), t_open, t_output_stream, t_transform, t_flush, t_next_output, t_cancel, t_close,
};

static const PipePluginDescV1 PLUGINS[] = {{
    sizeof(PipePluginDescV1),
    PIPE_KIND_TRANSFORM,
    "c_upper",
    "0.1.0",
    "upper-cases a utf8 column (a plugin written in C)",
    "{\"type\":\"object\",\"properties\":{\"column\":{\"type\":\"string\",\"description\":\"the utf8 column to upper-case (default text)\"}}}",
    check_config,
    NULL,
    &VTABLE,
    NULL,
}};

static const PipeLibraryV1 LIBRARY = {
    PIPE_ABI_VERSION, sizeof(PipeLibraryV1), "c (gcc), hand-written against pipe_plugin.h", "c_upper", "0.1.0",
    1, PLUGINS, free_string,
};

uint32_t pipe_plugin_abi_version(void) { return PIPE_ABI_VERSION; }

int32_t pipe_plugin_init_v1(const PipeHostApiV1* host, const PipeLibraryV1** out, PipeError* err) {
  if (!host || host->abi_version != PIPE_ABI_VERSION) return fail(err, PIPE_ERROR_ABI, "host speaks another ABI", NULL);
  *out = &LIBRARY;
  return PIPE_OK;
}
