/*
 * The subset of Falco's plugin API 3.0.0 that this SDK reads and writes, transcribed from
 * falcosecurity/libs userspace/plugin/plugin_types.h and plugin_api.h. Only struct members
 * that exist in 3.0.0 are declared: the SDK declares required API 3.0.0, so Falco may hand
 * it structs that end there.
 */
#pragma once
#include <stdint.h>

typedef uint32_t ss_plugin_bool;
typedef void ss_plugin_t;
typedef void ss_instance_t;
typedef void ss_plugin_owner_t;

enum {
	SS_PLUGIN_SUCCESS = 0,
	SS_PLUGIN_FAILURE = 1,
	SS_PLUGIN_TIMEOUT = -1,
	SS_PLUGIN_EOF = 2,
	SS_PLUGIN_NOT_SUPPORTED = 3,
};
typedef int32_t ss_plugin_rc;

enum { SS_PLUGIN_SCHEMA_NONE = 0, SS_PLUGIN_SCHEMA_JSON = 1 };
typedef int32_t ss_plugin_schema_type;

enum { FTYPE_UINT64 = 8, FTYPE_STRING = 9 };
enum { PPME_PLUGINEVENT_E = 322 };

/* The event header is packed: 26 bytes, then the parameter lengths, then the data. */
#pragma pack(push, 1)
typedef struct ss_plugin_event {
	uint64_t ts;
	uint64_t tid;
	uint32_t len;
	uint16_t type;
	uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)

typedef struct ss_plugin_event_input {
	const ss_plugin_event *evt;
	uint64_t evtnum;
	const char *evtsrc;
} ss_plugin_event_input;

typedef struct ss_plugin_extract_field {
	union {
		const char **str;
		uint64_t *u64;
	} res;
	uint64_t res_len;
	uint32_t field_id;
	const char *field;
	const char *arg_key;
	uint64_t arg_index;
	ss_plugin_bool arg_present;
	uint32_t ftype;
	ss_plugin_bool flist;
} ss_plugin_extract_field;

/* 3.0.0 also carries table vtables after `fields`; they are never read here. */
typedef struct ss_plugin_field_extract_input {
	ss_plugin_owner_t *owner;
	const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
	uint32_t num_fields;
	ss_plugin_extract_field *fields;
} ss_plugin_field_extract_input;

/* 3.0.0 also carries `tables` after these; later versions add `log_fn`: neither is read. */
typedef struct ss_plugin_init_input {
	const char *config;
	ss_plugin_owner_t *owner;
	const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
} ss_plugin_init_input;

/* Metrics: resolved by name whatever API version a plugin declares (libsinsp
 * plugin_loader.c SYM_RESOLVE(get_metrics); sinsp_plugin::get_metrics checks only that the
 * symbol exists). The enums of plugin_types.h are int-sized. */
enum { SS_PLUGIN_METRIC_TYPE_MONOTONIC = 0, SS_PLUGIN_METRIC_TYPE_NON_MONOTONIC = 1 };
enum { SS_PLUGIN_METRIC_VALUE_TYPE_U64 = 2, SS_PLUGIN_METRIC_VALUE_TYPE_D = 4 };

typedef union ss_plugin_metric_value {
	uint32_t u32;
	int32_t s32;
	uint64_t u64;
	int64_t s64;
	double d;
	float f;
	int i;
} ss_plugin_metric_value;

typedef struct ss_plugin_metric {
	const char *name;
	int type;
	ss_plugin_metric_value value;
	int value_type;
} ss_plugin_metric;
