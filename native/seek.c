/*
 * Where a local file holds data: lseek(SEEK_DATA) and lseek(SEEK_HOLE), which Node does not
 * expose. A full backup of a thin 1 TiB image holding 1 GiB then reads 1 GiB, not 1 TiB of
 * holes (docs/benchmarks.md, "Sparse disks"). src/sources/file-extents.ts falls back to
 * "all data" without this addon.
 *
 *   dataExtents(fd, offset, length) -> [start0, end0, start1, end1, ...]
 *
 * The extents of [offset, offset+length) that may hold data, sorted, as byte offsets; a
 * filesystem without hole support reports the whole range (the kernel's generic answer).
 * Throws an Error (code ESEEK, message strerror) when lseek fails otherwise.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static napi_value fail(napi_env env, int err) {
  napi_throw_error(env, "ESEEK", strerror(err));
  return NULL;
}

static napi_value data_extents(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t from, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3
      || napi_get_value_int32(env, argv[0], &fd) != napi_ok
      || napi_get_value_int64(env, argv[1], &from) != napi_ok
      || napi_get_value_int64(env, argv[2], &length) != napi_ok || from < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "expected fd, offset, length (non-negative integers)");
    return NULL;
  }
  napi_value out;
  if (napi_create_array(env, &out) != napi_ok) return NULL;
  uint32_t n = 0;
  const off_t end = (off_t)(from + length);
  off_t at = (off_t)from;
  while (at < end) {
    off_t data = lseek(fd, at, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; /* no data after `at` */
      return fail(env, errno);
    }
    if (data >= end) break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return fail(env, errno);
    if (hole > end) hole = end;
    napi_value s, e;
    if (napi_create_int64(env, (int64_t)data, &s) != napi_ok || napi_create_int64(env, (int64_t)hole, &e) != napi_ok
        || napi_set_element(env, out, n++, s) != napi_ok || napi_set_element(env, out, n++, e) != napi_ok) return NULL;
    at = hole;
  }
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "dataExtents", NAPI_AUTO_LENGTH, data_extents, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "dataExtents", fn) != napi_ok) return NULL;
  return exports;
}
