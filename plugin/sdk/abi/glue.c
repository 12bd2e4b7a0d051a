/*
 * The C half of the SDK: every `plugin_*` symbol Falco resolves is defined here.
 *
 * Why C and not Python for these: entering Python through cffi costs about 0.7 us per call,
 * while Falco asks for one field per call, dozens of times per event. So plugin info is
 * baked in at build time, and extraction is served from a per-event table: on the first
 * request for an event, C parses it once and calls every compiled field function (one per
 * field/argument pair asked so far) through the CPython API, keeping the returned strings
 * alive until the next event; the other requests of that event are table look-ups.
 * Everything else (init, open, next_batch, ...) enters Python through cffi once per call.
 *
 * The build prepends the SDK_* constants (plugin identity, fields JSON, init schema and the
 * Python search path relative to this library) and the sdkpy_* prototypes to this file.
 */
#include <Python.h> /* first, as Python requires; it defines _GNU_SOURCE */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_api.h"

#define SDK_MAX_SLOTS 4096
#define SDK_NO_SLOT UINT32_MAX

/* The sdkpy_* functions (implemented in Python, plugin/sdk/abi/runtime.py, exported by
 * cffi's embedding API) are declared by the build, from builder._EMBEDDING_API. */

/* A growable byte buffer: one per string-returning function per handle, so a returned
 * pointer stays valid until the next call of the same function. */
typedef struct {
	char *p;
	size_t len;
	size_t cap;
} sdk_buf;

static int sdk_buf_set(sdk_buf *b, const char *data, size_t len) {
	if (len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < len + 1) cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) return -1;
		b->p = p;
		b->cap = cap;
	}
	if (len) memcpy(b->p, data, len);
	b->p[len] = 0;
	b->len = len;
	return 0;
}

static void sdk_buf_free(sdk_buf *b) {
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* One distinct (field, argument) request. Python compiles an extractor per slot. */
typedef struct {
	uint32_t field_id;
	uint32_t arg_present;
	uint64_t arg_index;
	char *arg_key;
	uint32_t ftype;
	uint32_t next; /* next slot with the same field_id */
} sdk_slot;

typedef struct {
	int32_t count; /* -1: extraction failed; else number of values */
	uint32_t first; /* index into values */
} sdk_result;

typedef struct {
	void *py;
	sdk_buf last_error;
	sdk_buf open_params;
	sdk_buf evt_str;
	/* metrics: the array handed to Falco, the names it points into */
	ss_plugin_metric *metrics;
	uint32_t nmetrics;
	sdk_buf metric_names;
	/* extraction: slots learned so far, and the results of the current event */
	sdk_slot *slots;
	uint32_t nslots;
	uint32_t *heads; /* per field_id: first slot, or SDK_NO_SLOT */
	uint32_t nheads;
	uint64_t evtnum;
	uint32_t ncomputed; /* slots whose result is valid for evtnum */
	int computed;       /* evtnum went through sdk_compute */
	int unparsable;     /* ... and its payload did not parse: every field fails */
	sdk_result *results;
	const char **str_values; /* UTF-8 of the str objects held below */
	uint64_t *u64_values;
	size_t nvalues_cap;
	/* the Python side (runtime._Bound): its parse function and compiled field functions */
	PyObject *bound;
	PyObject *parse;
	PyObject *fns;
	PyObject **held; /* per slot: the list returned for the current event (owned) */
} sdk_state;

typedef struct {
	void *py;
	sdk_buf batch;
	ss_plugin_event **evts;
	uint32_t nevts;
	uint32_t nevts_cap;
	sdk_buf progress;
} sdk_instance;

/* ---- boot: make the embedded interpreter safe inside a non-Python host ---- */

static pthread_once_t sdk_boot_once = PTHREAD_ONCE_INIT;
static char sdk_dir[PATH_MAX];

static void sdk_boot_impl(void) {
	Dl_info info;
	/* Falco dlopens plugins RTLD_LOCAL: promote libpython to global before any extension
	 * module (orjson, _cffi_backend, ...) is loaded, or their libpython symbols fail to
	 * resolve. */
	if (dladdr((void *)&Py_IsInitialized, &info) && info.dli_fname)
		dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
	if (dladdr((void *)&sdk_boot_impl, &info) && info.dli_fname) {
		/* Never unmapped: Falco dlcloses plugins on hot reload, but the interpreter (and
		 * the threads and objects it holds that point into this library) lives on. */
		dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
		char *resolved = realpath(info.dli_fname, NULL);
		const char *path = resolved ? resolved : info.dli_fname;
		const char *slash = strrchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : 0;
		if (n >= sizeof sdk_dir) n = 0;
		memcpy(sdk_dir, path, n);
		sdk_dir[n] = 0;
		free(resolved);
	}
	int owner = !Py_IsInitialized();
	if (owner) {
		PyConfig config;
		PyConfig_InitPythonConfig(&config);
		config.install_signal_handlers = 0; /* the host owns signals */
		config.parse_argv = 0;
		config.use_environment = 0; /* the host's PYTHON* variables are not ours */
		config.user_site_directory = 0;
		PyStatus status = Py_InitializeFromConfig(&config);
		PyConfig_Clear(&config);
		if (PyStatus_Exception(status)) {
			fprintf(stderr, "%s: cannot start Python: %s\n", SDK_NAME,
			        status.err_msg ? status.err_msg : "unknown error");
			return;
		}
	}
	PyGILState_STATE gil = PyGILState_Ensure();
	/* Put this library's Python packages first, relative to the library itself. */
	PyObject *site = PyImport_ImportModule("site");
	PyObject *sys_path = PySys_GetObject("path");
	for (const char **rel = SDK_SEARCH_PATH; site && sys_path && *rel; rel++) {
		char dir[PATH_MAX * 2];
		snprintf(dir, sizeof dir, "%s/%s", sdk_dir, *rel);
		char *real = realpath(dir, NULL);
		if (!real) continue;
		PyObject *r = PyObject_CallMethod(site, "addsitedir", "s", real);
		Py_XDECREF(r);
		PyErr_Clear();
		/* addsitedir appends: move the entry to the front so our pins win. */
		PyObject *entry = PyUnicode_FromString(real);
		if (entry) {
			Py_ssize_t i = PySequence_Index(sys_path, entry);
			PyErr_Clear();
			if (i >= 0) PySequence_DelItem(sys_path, i);
			PyList_Insert(sys_path, 0, entry);
			Py_DECREF(entry);
		}
		free(real);
	}
	Py_XDECREF(site);
	PyErr_Clear();
	if (owner) {
		PyGILState_Release(gil);
		PyEval_SaveThread(); /* let cffi and every later call take the GIL */
	} else {
		PyGILState_Release(gil);
	}
}

static void sdk_boot(void) { pthread_once(&sdk_boot_once, sdk_boot_impl); }

/* ---- helpers Python calls (declared in the cffi cdef) ---- */

static void sdk_set_error_n(sdk_state *st, const char *msg, size_t len) {
	if (st) sdk_buf_set(&st->last_error, msg, len);
}

void sdk_set_error(void *st, const char *msg, size_t len) { sdk_set_error_n(st, msg, len); }

void sdk_set_open_params(void *st, const char *s, size_t len) {
	sdk_buf_set(&((sdk_state *)st)->open_params, s, len);
}

void sdk_set_event_string(void *st, const char *s, size_t len) {
	sdk_buf_set(&((sdk_state *)st)->evt_str, s, len);
}

/* Python hands over the metrics as NUL-separated names, values and kinds (0: counter as
 * u64, 1: gauge as double); they stay valid until the next call. */
int32_t sdk_set_metrics(void *stp, const char *names, size_t names_len, const double *values,
                        const uint8_t *gauge, uint32_t n) {
	sdk_state *st = stp;
	if (sdk_buf_set(&st->metric_names, names, names_len) != 0) return -1;
	ss_plugin_metric *m = realloc(st->metrics, (n ? n : 1) * sizeof *m);
	if (!m) return -1;
	st->metrics = m;
	const char *name = st->metric_names.p;
	for (uint32_t i = 0; i < n; i++) {
		m[i].name = name;
		name += strlen(name) + 1;
		if (gauge[i]) {
			m[i].type = SS_PLUGIN_METRIC_TYPE_NON_MONOTONIC;
			m[i].value_type = SS_PLUGIN_METRIC_VALUE_TYPE_D;
			m[i].value.d = values[i];
		} else {
			m[i].type = SS_PLUGIN_METRIC_TYPE_MONOTONIC;
			m[i].value_type = SS_PLUGIN_METRIC_VALUE_TYPE_U64;
			m[i].value.u64 = values[i] > 0 ? (uint64_t)values[i] : 0;
		}
	}
	st->nmetrics = n;
	return 0;
}

void sdk_set_progress(void *inst, const char *s, size_t len) {
	sdk_buf_set(&((sdk_instance *)inst)->progress, s, len);
}

/* Python hands over a batch as one contiguous blob of complete events; this builds the
 * pointer array Falco wants. Returns the number of events, or -1 if the blob is malformed. */
int32_t sdk_set_batch(void *instp, const char *blob, size_t len, uint32_t n) {
	sdk_instance *inst = instp;
	if (sdk_buf_set(&inst->batch, blob, len) != 0) return -1;
	if (n > inst->nevts_cap) {
		ss_plugin_event **p = realloc(inst->evts, n * sizeof *p);
		if (!p) return -1;
		inst->evts = p;
		inst->nevts_cap = n;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (off + sizeof(ss_plugin_event) > len) return -1;
		ss_plugin_event *e = (ss_plugin_event *)(inst->batch.p + off);
		if (e->len < sizeof(ss_plugin_event) || off + e->len > len) return -1;
		inst->evts[i] = e;
		off += e->len;
	}
	if (off != len) return -1;
	inst->nevts = n;
	return (int32_t)n;
}

void sdk_slot_key(void *stp, uint32_t i, uint32_t *field_id, uint32_t *arg_present,
                  uint64_t *arg_index, const char **arg_key) {
	sdk_slot *s = &((sdk_state *)stp)->slots[i];
	*field_id = s->field_id;
	*arg_present = s->arg_present;
	*arg_index = s->arg_index;
	*arg_key = s->arg_key;
}

/* Python hands over its per-state object (runtime._Bound) once, from plugin_init: C keeps
 * strong references to it, to its parse function and to its list of field functions.
 * (cffi releases the GIL around calls into C: take it back.) */
void sdk_set_bound(void *stp, void *bound) {
	sdk_state *st = stp;
	PyGILState_STATE gil = PyGILState_Ensure();
	st->bound = bound;
	Py_INCREF(st->bound);
	st->parse = PyObject_GetAttrString(st->bound, "parse");
	st->fns = PyObject_GetAttrString(st->bound, "fns");
	if (st->parse == Py_None) Py_CLEAR(st->parse);
	PyErr_Clear();
	PyGILState_Release(gil);
}

static void sdk_release_held(sdk_state *st) {
	for (uint32_t i = 0; i < st->ncomputed; i++) Py_CLEAR(st->held[i]);
	st->ncomputed = 0;
}

static int sdk_grow_values(sdk_state *st, size_t need) {
	if (need <= st->nvalues_cap) return 0;
	size_t cap = st->nvalues_cap ? st->nvalues_cap : 256;
	while (cap < need) cap *= 2;
	const char **sv = realloc(st->str_values, cap * sizeof *sv);
	if (!sv) return -1;
	st->str_values = sv;
	uint64_t *uv = realloc(st->u64_values, cap * sizeof *uv);
	if (!uv) return -1;
	st->u64_values = uv;
	st->nvalues_cap = cap;
	return 0;
}

/* The message of an exception (or of the pending one), through the plugin's redaction. */
static void sdk_error_from(sdk_state *st, PyObject *exc) {
	PyObject *text = exc ? PyObject_CallMethod(st->bound, "describe", "O", exc) : NULL;
	const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
	if (msg) sdk_set_error_n(st, msg, strlen(msg));
	else sdk_set_error_n(st, "extraction failed", 17);
	Py_XDECREF(text);
	PyErr_Clear();
}

static void sdk_error_from_python(sdk_state *st) {
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	sdk_error_from(st, value);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
}

/* Slot i's result for this event (a new reference, NULL with a Python error set, or an
 * exception instance standing for a failed field): kept in the table until the next event.
 * `*v` counts the values stored so far; the first failure of the event sets the error. */
static void sdk_keep(sdk_state *st, uint32_t i, PyObject *got, size_t *v, int *failed) {
	sdk_result *res = &st->results[i];
	st->held[i] = got;
	st->ncomputed = i + 1;
	res->first = (uint32_t)*v;
	res->count = 0;
	if (!got || PyExceptionInstance_Check(got)) {
		res->count = -1;
		if (!(*failed)++) {
			if (got) sdk_error_from(st, got);
			else sdk_error_from_python(st);
		}
		PyErr_Clear();
		return;
	}
	if (got == Py_None) return;
	if (!PyList_Check(got)) {
		res->count = -1;
		if (!(*failed)++) {
			char msg[160];
			int n = snprintf(msg, sizeof msg, "field function returned %s, not a list",
			                 Py_TYPE(got)->tp_name);
			sdk_set_error_n(st, msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0);
		}
		return;
	}
	Py_ssize_t n = PyList_GET_SIZE(got);
	if (sdk_grow_values(st, *v + (size_t)n) != 0) {
		res->count = -1;
		return;
	}
	for (Py_ssize_t k = 0; k < n; k++) {
		/* UTF-8 cached in the str object: valid while `got` is held. A NUL inside a value
		 * ends it, as any C string. */
		PyObject *item = PyList_GET_ITEM(got, k);
		const char *utf8 = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
		if (!utf8) {
			PyErr_Clear();
			res->count = -1;
			return;
		}
		st->str_values[*v + (size_t)k] = utf8;
		if (st->slots[i].ftype == FTYPE_UINT64)
			st->u64_values[*v + (size_t)k] = strtoull(utf8, NULL, 10);
	}
	res->count = (int32_t)n;
	*v += (size_t)n;
}

/* One event: parse it once, then one call for all slots (`run_all`, when the extractor
 * has `compile_all`) or one call per slot. A failing field fails only itself (count -1);
 * a failing parse fails the whole event. */
static ss_plugin_rc sdk_compute(sdk_state *st, const char *data, uint32_t len) {
	PyGILState_STATE gil = PyGILState_Ensure();
	ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
	sdk_release_held(st);
	if (!st->parse || !st->fns) {
		sdk_set_error_n(st, "plugin does not extract fields", 30);
		rc = SS_PLUGIN_FAILURE;
		goto out;
	}
	if (PyList_GET_SIZE(st->fns) < (Py_ssize_t)st->nslots) {
		PyObject *r = PyObject_CallMethod(st->bound, "compile_slots", "I", st->nslots);
		Py_XDECREF(r);
		if (!r || PyList_GET_SIZE(st->fns) < (Py_ssize_t)st->nslots) {
			sdk_error_from_python(st);
			rc = SS_PLUGIN_FAILURE;
			goto out;
		}
	}
	PyObject *bytes = PyBytes_FromStringAndSize(data, len);
	PyObject *doc = bytes ? PyObject_CallOneArg(st->parse, bytes) : NULL;
	Py_XDECREF(bytes);
	if (!doc) {
		st->unparsable = 1;
		sdk_error_from_python(st);
		rc = SS_PLUGIN_FAILURE;
		goto out;
	}
	size_t v = 0;
	int failed = 0;
	PyObject *run_all = PyObject_GetAttrString(st->bound, "run_all");
	if (run_all && run_all != Py_None) {
		PyObject *all = PyObject_CallOneArg(run_all, doc);
		if (!all || !PyList_Check(all) || PyList_GET_SIZE(all) < (Py_ssize_t)st->nslots) {
			if (all) PyErr_SetString(PyExc_TypeError, "compile_all's function returned "
			                                          "no list of one result per field");
			sdk_error_from_python(st);
			rc = SS_PLUGIN_FAILURE;
		} else {
			for (uint32_t i = 0; i < st->nslots; i++) {
				PyObject *got = PyList_GET_ITEM(all, i);
				Py_INCREF(got);
				sdk_keep(st, i, got, &v, &failed);
			}
		}
		Py_XDECREF(all);
	} else {
		PyErr_Clear();
		for (uint32_t i = 0; i < st->nslots; i++)
			sdk_keep(st, i, PyObject_CallOneArg(PyList_GET_ITEM(st->fns, i), doc), &v, &failed);
	}
	Py_XDECREF(run_all);
	Py_DECREF(doc);
out:
	PyGILState_Release(gil);
	return rc;
}

/* ---- plugin info: static, no Python ---- */

const char *plugin_get_required_api_version(void) { return SDK_REQUIRED_API_VERSION; }
const char *plugin_get_name(void) { return SDK_NAME; }
const char *plugin_get_description(void) { return SDK_DESCRIPTION; }
const char *plugin_get_contact(void) { return SDK_CONTACT; }
const char *plugin_get_version(void) { return SDK_VERSION; }
uint32_t plugin_get_id(void) { return SDK_ID; }
const char *plugin_get_event_source(void) { return SDK_EVENT_SOURCE; }
const char *plugin_get_fields(void) { return SDK_FIELDS; }
const char *plugin_get_extract_event_sources(void) { return SDK_EXTRACT_EVENT_SOURCES; }

const char *plugin_get_init_schema(ss_plugin_schema_type *schema_type) {
	*schema_type = SDK_INIT_SCHEMA[0] ? SS_PLUGIN_SCHEMA_JSON : SS_PLUGIN_SCHEMA_NONE;
	return SDK_INIT_SCHEMA;
}

/* ---- lifecycle ---- */

static const char SDK_NO_PYTHON[] = "the embedded Python runtime failed to start (see stderr)";

ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
	sdk_state *st = calloc(1, sizeof *st);
	if (!st) {
		*rc = SS_PLUGIN_FAILURE;
		return NULL;
	}
	st->results = calloc(SDK_MAX_SLOTS, sizeof *st->results);
	st->slots = calloc(SDK_MAX_SLOTS, sizeof *st->slots);
	st->held = calloc(SDK_MAX_SLOTS, sizeof *st->held);
	sdk_boot();
	if (!st->results || !st->slots || !st->held) {
		sdk_set_error_n(st, "out of memory", 13);
		*rc = SS_PLUGIN_FAILURE;
		return st;
	}
	if (!Py_IsInitialized()) {
		sdk_set_error_n(st, SDK_NO_PYTHON, sizeof SDK_NO_PYTHON - 1);
		*rc = SS_PLUGIN_FAILURE;
		return st;
	}
	st->py = sdkpy_init(st, in && in->config ? in->config : "");
	*rc = st->py ? SS_PLUGIN_SUCCESS : SS_PLUGIN_FAILURE;
	if (!st->py && !st->last_error.len)
		sdk_set_error_n(st, "plugin init failed", 18);
	return st;
}

void plugin_destroy(ss_plugin_t *s) {
	sdk_state *st = s;
	if (!st) return;
	if (st->bound) {
		PyGILState_STATE gil = PyGILState_Ensure();
		sdk_release_held(st);
		Py_CLEAR(st->fns);
		Py_CLEAR(st->parse);
		Py_CLEAR(st->bound);
		PyGILState_Release(gil);
	}
	if (st->py) sdkpy_destroy(st->py);
	for (uint32_t i = 0; i < st->nslots; i++) free(st->slots[i].arg_key);
	free(st->held);
	free(st->slots);
	free(st->heads);
	free(st->results);
	free(st->str_values);
	free(st->u64_values);
	sdk_buf_free(&st->last_error);
	sdk_buf_free(&st->open_params);
	sdk_buf_free(&st->evt_str);
	sdk_buf_free(&st->metric_names);
	free(st->metrics);
	free(st);
}

const char *plugin_get_last_error(ss_plugin_t *s) {
	sdk_state *st = s;
	return st && st->last_error.p ? st->last_error.p : "";
}

/* ---- event sourcing ---- */

ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
	sdk_state *st = s;
	sdk_instance *inst = calloc(1, sizeof *inst);
	if (!st || !st->py || !inst) {
		free(inst);
		*rc = SS_PLUGIN_FAILURE;
		return NULL;
	}
	st->computed = 0; /* event numbers start again with a new capture */
	inst->py = sdkpy_open(st->py, inst, params ? params : "");
	if (!inst->py) {
		free(inst);
		*rc = SS_PLUGIN_FAILURE;
		return NULL;
	}
	*rc = SS_PLUGIN_SUCCESS;
	return inst;
}

void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
	sdk_state *st = s;
	sdk_instance *inst = h;
	if (!inst) return;
	if (st) st->computed = 0;
	if (st && st->py && inst->py) sdkpy_close(st->py, inst->py);
	sdk_buf_free(&inst->batch);
	sdk_buf_free(&inst->progress);
	free(inst->evts);
	free(inst);
}

ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *h, uint32_t *nevts,
                               ss_plugin_event ***evts) {
	sdk_state *st = s;
	sdk_instance *inst = h;
	*nevts = 0;
	if (!st || !st->py || !inst || !inst->py) return SS_PLUGIN_FAILURE;
	inst->nevts = 0;
	ss_plugin_rc rc = sdkpy_next_batch(st->py, inst->py, inst);
	if (rc == SS_PLUGIN_SUCCESS || rc == SS_PLUGIN_EOF) {
		*nevts = inst->nevts;
		*evts = inst->evts;
	}
	return rc;
}

const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc) {
	sdk_state *st = s;
	if (!st || !st->py) {
		*rc = SS_PLUGIN_FAILURE;
		return NULL;
	}
	*rc = sdkpy_list_open_params(st->py, st);
	return *rc == SS_PLUGIN_SUCCESS ? st->open_params.p : NULL;
}

const char *plugin_get_progress(ss_plugin_t *s, ss_instance_t *h, uint32_t *progress_pct) {
	sdk_state *st = s;
	sdk_instance *inst = h;
	*progress_pct = 0;
	if (!st || !st->py || !inst || !inst->py) return NULL;
	if (sdkpy_progress(st->py, inst->py, inst, progress_pct) != SS_PLUGIN_SUCCESS) return NULL;
	return inst->progress.p;
}

/* The data of a plugin event (type 322): param 0 is the plugin ID, param 1 the payload. */
static int sdk_event_payload(const ss_plugin_event *e, const char **data, uint32_t *len) {
	if (!e || e->type != PPME_PLUGINEVENT_E || e->nparams != 2) return -1;
	const uint32_t *lens = (const uint32_t *)((const char *)e + sizeof *e);
	uint32_t l0, l1;
	memcpy(&l0, &lens[0], 4);
	memcpy(&l1, &lens[1], 4);
	if ((uint64_t)sizeof *e + 8 + l0 + l1 > e->len) return -1;
	*data = (const char *)e + sizeof *e + 8 + l0;
	*len = l1;
	return 0;
}

/* Called by Falco's metrics collector every interval: not a hot path, one Python entry. */
ss_plugin_metric *plugin_get_metrics(ss_plugin_t *s, uint32_t *num_metrics) {
	sdk_state *st = s;
	*num_metrics = 0;
	if (!st || !st->py || sdkpy_metrics(st->py, st) != SS_PLUGIN_SUCCESS) return NULL;
	*num_metrics = st->nmetrics;
	return st->metrics;
}

const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *evt) {
	sdk_state *st = s;
	const char *data;
	uint32_t len;
	if (!st || !st->py || sdk_event_payload(evt->evt, &data, &len) != 0) return NULL;
	if (sdkpy_event_to_string(st->py, st, data, len) != SS_PLUGIN_SUCCESS) return NULL;
	return st->evt_str.p;
}

/* ---- field extraction: C serves what Python computed once for this event ---- */

static uint32_t sdk_find_slot(sdk_state *st, const ss_plugin_extract_field *f) {
	if (f->field_id >= st->nheads) {
		uint32_t n = f->field_id + 1;
		uint32_t *h = realloc(st->heads, n * sizeof *h);
		if (!h) return SDK_NO_SLOT;
		for (uint32_t i = st->nheads; i < n; i++) h[i] = SDK_NO_SLOT;
		st->heads = h;
		st->nheads = n;
	}
	for (uint32_t i = st->heads[f->field_id]; i != SDK_NO_SLOT; i = st->slots[i].next) {
		sdk_slot *s = &st->slots[i];
		if (s->arg_present != (f->arg_present != 0)) continue;
		if (!s->arg_present) return i;
		if (s->arg_key || f->arg_key) {
			if (s->arg_key && f->arg_key && !strcmp(s->arg_key, f->arg_key)) return i;
		} else if (s->arg_index == f->arg_index) {
			return i;
		}
	}
	if (st->nslots >= SDK_MAX_SLOTS) return SDK_NO_SLOT;
	uint32_t i = st->nslots;
	sdk_slot *s = &st->slots[i];
	s->field_id = f->field_id;
	s->arg_present = f->arg_present != 0;
	s->arg_index = f->arg_present ? f->arg_index : 0;
	s->arg_key = f->arg_present && f->arg_key ? strdup(f->arg_key) : NULL;
	s->ftype = f->ftype;
	s->next = st->heads[f->field_id];
	st->heads[f->field_id] = i;
	st->nslots++;
	return i;
}

static const char SDK_TOO_MANY[] = "too many distinct field requests";
static const char SDK_BAD_EVENT[] = "not a plugin event (type 322) with 2 parameters";

ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *evt,
                                   const ss_plugin_field_extract_input *in) {
	sdk_state *st = s;
	if (!st || !st->py) return SS_PLUGIN_FAILURE;
	if (st->evtnum != evt->evtnum || !st->computed) {
		st->evtnum = evt->evtnum;
		st->computed = st->unparsable = 0;
	}
	if (st->unparsable) return SS_PLUGIN_FAILURE;
	uint32_t slots_local[64];
	uint32_t *slot = in->num_fields <= 64 ? slots_local : malloc(in->num_fields * sizeof *slot);
	if (!slot) return SS_PLUGIN_FAILURE;
	ss_plugin_rc rc = SS_PLUGIN_SUCCESS;
	int missing = 0;
	for (uint32_t i = 0; i < in->num_fields; i++) {
		slot[i] = sdk_find_slot(st, &in->fields[i]);
		if (slot[i] == SDK_NO_SLOT) {
			sdk_set_error_n(st, SDK_TOO_MANY, sizeof SDK_TOO_MANY - 1);
			rc = SS_PLUGIN_FAILURE;
			goto out;
		}
		if (!st->computed || slot[i] >= st->ncomputed) missing = 1;
	}
	if (missing) {
		const char *data;
		uint32_t len;
		if (sdk_event_payload(evt->evt, &data, &len) != 0) {
			sdk_set_error_n(st, SDK_BAD_EVENT, sizeof SDK_BAD_EVENT - 1);
			rc = SS_PLUGIN_FAILURE;
			goto out;
		}
		ss_plugin_rc computed = sdk_compute(st, data, len);
		st->computed = st->unparsable || computed == SS_PLUGIN_SUCCESS;
		if (computed != SS_PLUGIN_SUCCESS) {
			rc = SS_PLUGIN_FAILURE;
			goto out;
		}
	}
	for (uint32_t i = 0; i < in->num_fields; i++) {
		ss_plugin_extract_field *f = &in->fields[i];
		const sdk_result *r = &st->results[slot[i]];
		f->res_len = 0;
		if (r->count < 0) {
			rc = SS_PLUGIN_FAILURE;
			continue;
		}
		f->res_len = (uint64_t)r->count;
		if (f->ftype == FTYPE_UINT64)
			f->res.u64 = &st->u64_values[r->first];
		else
			f->res.str = &st->str_values[r->first];
	}
out:
	if (slot != slots_local) free(slot);
	return rc;
}
