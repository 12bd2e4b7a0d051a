/*
 * falco_host: drives a plugin library through its C ABI the way libsinsp does, from a
 * process that is not Python: dlopen(RTLD_LOCAL|RTLD_NOW), the API version check, init
 * with a real ss_plugin_init_input, fields, open/next_batch/close, extract_fields.
 *
 *   falco_host LIB info FRAMEWORK_API_VERSION
 *   falco_host LIB extract CONFIG EVENTS.jsonl REQUESTS [multi]
 *   falco_host LIB time CONFIG EVENTS.jsonl REQUESTS [ROUNDS]   (the extraction benchmark)
 *   falco_host LIB capture CONFIG OPEN_PARAMS REQUESTS [MAX_EVENTS] [MAX_TIMEOUTS] [THEN]
 *              [metrics]
 *   falco_host LIB reload CONFIG EVENTS.jsonl REQUESTS     (extract, dlclose, load, extract)
 *
 * capture stops after MAX_EVENTS events (-1: no limit), MAX_TIMEOUTS timeouts in all, or EOF.
 * THEN (default 0) is how many more next_batch calls it makes once MAX_EVENTS were printed:
 * Falco asking for more after processing the last batch, which lets the plugin count that
 * batch as consumed. With 0, close follows the last batch at once, as on SIGTERM. With
 * `metrics`, a last row reports plugin_get_metrics before close, as Falco's collector asks.
 *
 * REQUESTS: one field request a line, "FIELD_ID\tKEY\t(-|i:INDEX|k:KEY)", KEY being the
 * name printed in the output. Output: one JSON object a line. Extraction results are
 * null (no value), a list of strings, {"rc": N} (failure) or {"u64": [...]}.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../plugin/sdk/abi/plugin_api.h"

typedef struct { /* the full 3.0.0 init input: config, owner, last error, tables */
	const char *config;
	void *owner;
	const char *(*get_owner_last_error)(void *);
	const void *tables;
} init_input_v3;

typedef struct { /* the extract input as libsinsp passes it today (plugin API 3.12): the
                  * 3.0.0 members, then table_reader_ext and value_offsets, NULL here.
                  * A plugin declaring a later minor (upstream k8saudit: 3.11) reads them. */
	void *owner;
	const char *(*get_owner_last_error)(void *);
	uint32_t num_fields;
	ss_plugin_extract_field *fields;
	void *table_reader[4];
	void *table_reader_ext;
	void *value_offsets;
} extract_input_v3;

static void *lib;
#define SYM(name) dlsym(lib, "plugin_" #name)

static void json_str(const char *s, size_t n) {
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') printf("\\%c", c);
		else if (c < 0x20) printf("\\u%04x", c);
		else putchar(c);
	}
	putchar('"');
}

static void json_cstr(const char *s);

/* As libsinsp's metrics collector does (sinsp_plugin::get_metrics): resolved by name,
 * whatever API version the plugin declares. One row: {"metrics": {name: [value, type]}}. */
static void print_metrics(void *st) {
	ss_plugin_metric *(*get_metrics)(void *, uint32_t *) = SYM(get_metrics);
	if (!get_metrics) return;
	uint32_t n = 0;
	ss_plugin_metric *m = get_metrics(st, &n);
	printf("{\"metrics\": {");
	for (uint32_t i = 0; m && i < n; i++) {
		printf(i ? ", " : "");
		json_cstr(m[i].name);
		if (m[i].value_type == SS_PLUGIN_METRIC_VALUE_TYPE_U64)
			printf(": [%" PRIu64 ", \"u64\", %d]", m[i].value.u64, m[i].type);
		else
			printf(": [%g, \"d\", %d]", m[i].value.d, m[i].type);
	}
	printf("}}\n");
}

static void json_cstr(const char *s) {
	if (!s) printf("null");
	else json_str(s, strlen(s));
}

typedef struct {
	ss_plugin_extract_field f;
	char *key;
	uint32_t ftype;
} request;

static request reqs[4096];
static int nreq;

static int load_requests(const char *path, const char *fields_json) {
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	char line[8192];
	while (fgets(line, sizeof line, f) && nreq < 4096) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0]) continue;
		char *id = strtok(line, "\t"), *key = strtok(NULL, "\t"), *arg = strtok(NULL, "\t");
		if (!id || !key || !arg) return -1;
		request *r = &reqs[nreq++];
		memset(r, 0, sizeof *r);
		r->key = strdup(key);
		r->f.field_id = (uint32_t)strtoul(id, NULL, 10);
		r->f.field = strndup(key, strcspn(key, "[")); /* the name alone, as libsinsp passes it */
		/* the field type, from the plugin's field list: uint64 or string */
		char pat[9000];
		snprintf(pat, sizeof pat, "\"name\": \"%.*s\"", (int)strcspn(key, "["), key);
		const char *p = strstr(fields_json, pat);
		if (!p) {
			snprintf(pat, sizeof pat, "\"name\":\"%.*s\"", (int)strcspn(key, "["), key);
			p = strstr(fields_json, pat);
		}
		const char *end = p ? strchr(p, '}') : NULL;
		const char *t = p ? strstr(p, "uint64") : NULL;
		r->f.ftype = (t && t < end) ? FTYPE_UINT64 : FTYPE_STRING;
		const char *l = p ? strstr(p, "isList") : NULL;
		r->f.flist = l && l < end && !strncmp(l + 8 + (l[8] == ' '), "true", 4);
		if (arg[0] == 'i' && arg[1] == ':') {
			r->f.arg_present = 1;
			r->f.arg_index = strtoull(arg + 2, NULL, 10);
		} else if (arg[0] == 'k' && arg[1] == ':') {
			r->f.arg_present = 1;
			r->f.arg_key = strdup(arg + 2);
		}
	}
	fclose(f);
	return 0;
}

static void print_value(const ss_plugin_extract_field *f, int32_t rc) {
	if (rc != SS_PLUGIN_SUCCESS) {
		printf("{\"rc\": %d}", rc);
	} else if (f->res_len == 0) {
		printf("null");
	} else if (f->ftype == FTYPE_UINT64) {
		printf("{\"u64\": [");
		for (uint64_t k = 0; k < f->res_len; k++) printf("%s%" PRIu64, k ? ", " : "", f->res.u64[k]);
		printf("]}");
	} else {
		putchar('[');
		for (uint64_t k = 0; k < f->res_len; k++) {
			if (k) printf(", ");
			json_cstr(f->res.str[k]);
		}
		putchar(']');
	}
}

static void extract_and_print(void *st, const ss_plugin_event *evt, uint64_t evtnum, int multi) {
	ss_plugin_rc (*extract)(void *, const ss_plugin_event_input *, const extract_input_v3 *) =
		SYM(extract_fields);
	ss_plugin_event_input ei = {evt, evtnum, "k8s_audit"};
	printf("\"values\": {");
	if (multi) {
		/* many fields per call; on failure, fall back to one call per field to see which */
		ss_plugin_extract_field *fs = calloc(nreq, sizeof *fs);
		for (int k = 0; k < nreq; k++) fs[k] = reqs[k].f;
		extract_input_v3 in = {NULL, NULL, (uint32_t)nreq, fs, {0}};
		int32_t rc = extract(st, &ei, &in);
		for (int k = 0; k < nreq; k++) {
			if (k) printf(", ");
			json_cstr(reqs[k].key);
			printf(": ");
			if (rc != SS_PLUGIN_SUCCESS) {
				ss_plugin_extract_field f = reqs[k].f;
				extract_input_v3 one = {NULL, NULL, 1, &f, {0}};
				print_value(&f, extract(st, &ei, &one));
			} else {
				print_value(&fs[k], rc);
			}
		}
		free(fs);
	} else {
		for (int k = 0; k < nreq; k++) {
			ss_plugin_extract_field f = reqs[k].f;
			extract_input_v3 in = {NULL, NULL, 1, &f, {0}};
			int32_t rc = extract(st, &ei, &in);
			if (k) printf(", ");
			json_cstr(reqs[k].key);
			printf(": ");
			print_value(&f, rc);
		}
	}
	printf("}");
}

static int api_compatible(const char *plugin, const char *framework) {
	unsigned pm, pn, pp, fm, fn, fp;
	if (sscanf(plugin, "%u.%u.%u", &pm, &pn, &pp) != 3) return 0;
	if (sscanf(framework, "%u.%u.%u", &fm, &fn, &fp) != 3) return 0;
	if (pm != fm) return 0;
	if (fn != pn) return fn > pn;
	return fp >= pp;
}

static void *init_plugin(const char *config) {
	void *(*init)(const init_input_v3 *, ss_plugin_rc *) = SYM(init);
	const char *(*last_error)(void *) = SYM(get_last_error);
	init_input_v3 in = {config, NULL, NULL, NULL};
	ss_plugin_rc rc = SS_PLUGIN_FAILURE;
	void *st = init(&in, &rc);
	if (rc != SS_PLUGIN_SUCCESS) {
		printf("{\"init_rc\": %d, \"error\": ", rc);
		json_cstr(st ? last_error(st) : NULL);
		printf("}\n");
		void (*destroy)(void *) = SYM(destroy);
		if (st) destroy(st);
		return NULL;
	}
	return st;
}

/* The events of a JSON-lines file as plugin events (one allocation each, freed by the
 * caller), in order. */
static ss_plugin_event **load_events(const char *path, uint32_t pid, size_t *count) {
	FILE *ef = fopen(path, "r");
	*count = 0;
	if (!ef) return NULL;
	size_t n_evts = 0, cap_evts = 1, cap = 0;
	ss_plugin_event **evts = malloc(cap_evts * sizeof *evts); /* non-NULL: read, maybe empty */
	char *buf = NULL;
	ssize_t n;
	while ((n = getline(&buf, &cap, ef)) > 0) {
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
		if (n == 0) continue;
		uint32_t total = sizeof(ss_plugin_event) + 12 + (uint32_t)n;
		uint8_t *e = malloc(total);
		ss_plugin_event hdr = {0, UINT64_MAX, total, PPME_PLUGINEVENT_E, 2};
		uint32_t lens[2] = {4, (uint32_t)n};
		memcpy(e, &hdr, sizeof hdr);
		memcpy(e + sizeof hdr, lens, 8);
		memcpy(e + sizeof hdr + 8, &pid, 4);
		memcpy(e + sizeof hdr + 12, buf, n);
		if (n_evts == cap_evts) {
			cap_evts *= 2;
			evts = realloc(evts, cap_evts * sizeof *evts);
		}
		evts[n_evts++] = (ss_plugin_event *)e;
	}
	fclose(ef);
	free(buf);
	*count = n_evts;
	return evts;
}

/* `time`: the extraction benchmark. One plugin_extract_fields call per field per event, as
 * libsinsp's filterchecks make them; one warm-up pass, then ROUNDS timed passes, each giving
 * every event a fresh event number so no per-event cache carries over. */
static int run_time(int argc, char **argv) {
	void (*destroy)(void *) = SYM(destroy);
	ss_plugin_rc (*extract)(void *, const ss_plugin_event_input *, const extract_input_v3 *) =
		SYM(extract_fields);
	void *st = init_plugin(argv[3]);
	if (!st) return 1;
	if (load_requests(argv[5], ((const char *(*)(void))SYM(get_fields))()) != 0) return 1;
	long rounds = argc > 6 ? atol(argv[6]) : 20;
	size_t n_evts = 0;
	ss_plugin_event **evts = load_events(argv[4], ((uint32_t(*)(void))SYM(get_id))(), &n_evts);
	if (!evts || !n_evts) return 1;
	uint64_t evtnum = 0, found = 0;
	struct timespec t0, t1;
	for (long round = -1; round < rounds; round++) {
		if (round == 0) clock_gettime(CLOCK_MONOTONIC, &t0);
		for (size_t i = 0; i < n_evts; i++) {
			ss_plugin_event_input ei = {evts[i], ++evtnum, "k8s_audit"};
			for (int r = 0; r < nreq; r++) {
				ss_plugin_extract_field f = reqs[r].f;
				extract_input_v3 one = {NULL, NULL, 1, &f, {0}};
				if (extract(st, &ei, &one) == SS_PLUGIN_SUCCESS && round == 0) found += f.res_len;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	double per_event = ns / ((double)n_evts * rounds);
	printf("events=%zu fields=%d rounds=%ld values_per_pass=%" PRIu64
	       " ns_per_event=%.1f ns_per_extraction=%.1f\n",
	       n_evts, nreq, rounds, found, per_event, per_event / (nreq ? nreq : 1));
	for (size_t i = 0; i < n_evts; i++) free(evts[i]);
	free(evts);
	destroy(st);
	return 0;
}

static int run_extract(int argc, char **argv) {
	const char *(*get_fields)(void) = SYM(get_fields);
	void (*destroy)(void *) = SYM(destroy);
	void *st = init_plugin(argv[3]);
	if (!st) return 0;
	if (load_requests(argv[5], get_fields()) != 0) return 1;
	int multi = argc > 6 && !strcmp(argv[6], "multi");
	size_t n_evts = 0;
	ss_plugin_event **evts = load_events(argv[4], ((uint32_t(*)(void))SYM(get_id))(), &n_evts);
	if (!evts) return 1;
	for (size_t i = 0; i < n_evts; i++) {
		printf("{\"evtnum\": %zu, ", i + 1);
		extract_and_print(st, evts[i], i + 1, multi);
		printf("}\n");
		free(evts[i]);
	}
	free(evts);
	destroy(st);
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (argc < 3) {
		fprintf(stderr, "usage: see the comment at the top of falco_host.c\n");
		return 2;
	}
	lib = dlopen(argv[1], RTLD_LOCAL | RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	const char *(*api)(void) = SYM(get_required_api_version);
	const char *(*get_fields)(void) = SYM(get_fields);
	const char *(*last_error)(void *) = SYM(get_last_error);
	void (*destroy)(void *) = SYM(destroy);
	if (!api || !SYM(init) || !destroy || !last_error || !SYM(get_name) || !SYM(get_version)) {
		fprintf(stderr, "missing required plugin symbols\n");
		return 1;
	}
	const char *cmd = argv[2];
	if (!strcmp(cmd, "reload") && argc >= 6) {
		/* Falco's hot reload: the plugin is destroyed and dlclosed, then loaded again in
		 * the same process. */
		for (int round = 0; round < 2; round++) {
			if (round) {
				dlclose(lib);
				lib = dlopen(argv[1], RTLD_LOCAL | RTLD_NOW);
				if (!lib) {
					fprintf(stderr, "dlopen: %s\n", dlerror());
					return 1;
				}
			}
			char *args[] = {argv[0], argv[1], "extract", argv[3], argv[4], argv[5], NULL};
			if (run_extract(6, args) != 0) return 1;
			nreq = 0;
		}
		return 0;
	}

	if (!strcmp(cmd, "info") && argc >= 4) {
		const char *(*str0)(void);
		uint32_t (*get_id)(void) = SYM(get_id);
		const char *(*schema)(ss_plugin_schema_type *) = SYM(get_init_schema);
		ss_plugin_schema_type stype = 0;
		printf("{\"required_api_version\": ");
		json_cstr(api());
		printf(", \"compatible\": %s", api_compatible(api(), argv[3]) ? "true" : "false");
		str0 = SYM(get_name), printf(", \"name\": "), json_cstr(str0());
		str0 = SYM(get_version), printf(", \"version\": "), json_cstr(str0());
		str0 = SYM(get_description), printf(", \"description\": "), json_cstr(str0());
		str0 = SYM(get_contact), printf(", \"contact\": "), json_cstr(str0());
		str0 = SYM(get_event_source), printf(", \"event_source\": "), json_cstr(str0());
		printf(", \"id\": %u", get_id ? get_id() : 0);
		printf(", \"fields\": %s", get_fields ? get_fields() : "null");
		const char *sc = schema ? schema(&stype) : NULL;
		printf(", \"schema_type\": %d, \"init_schema\": ", stype);
		json_cstr(sc);
		printf("}\n");
		return 0;
	}

	if (!strcmp(cmd, "extract") && argc >= 6) return run_extract(argc, argv);
	if (!strcmp(cmd, "time") && argc >= 6) return run_time(argc, argv);

	if (!strcmp(cmd, "capture") && argc >= 6) {
		void *st = init_plugin(argv[3]);
		if (!st) return 0;
		if (load_requests(argv[5], get_fields()) != 0) return 1;
		long max_events = argc > 6 ? atol(argv[6]) : -1;
		long max_timeouts = argc > 7 ? atol(argv[7]) : 1000;
		long then = argc > 8 ? atol(argv[8]) : 0;
		long calls_left = -1; /* once MAX_EVENTS is reached: THEN, counting down */
		void *(*open)(void *, const char *, ss_plugin_rc *) = SYM(open);
		void (*close)(void *, void *) = SYM(close);
		ss_plugin_rc (*next_batch)(void *, void *, uint32_t *, ss_plugin_event ***) =
			SYM(next_batch);
		const char *(*progress)(void *, void *, uint32_t *) = SYM(get_progress);
		uint32_t pid = ((uint32_t(*)(void))SYM(get_id))();
		ss_plugin_rc rc;
		void *h = open(st, argv[4], &rc);
		if (rc != SS_PLUGIN_SUCCESS) {
			printf("{\"open_rc\": %d, \"error\": ", rc);
			json_cstr(last_error(st));
			printf("}\n");
			destroy(st);
			return 0;
		}
		long events = 0, timeouts = 0;
		uint64_t evtnum = 0;
		for (;;) {
			uint32_t nevts = 0;
			ss_plugin_event **evts = NULL;
			if (calls_left == 0) break;
			if (calls_left > 0) calls_left--;
			rc = next_batch(st, h, &nevts, &evts);
			if (rc == SS_PLUGIN_TIMEOUT) {
				if (++timeouts >= max_timeouts) break;
				continue;
			}
			if (rc != SS_PLUGIN_SUCCESS && rc != SS_PLUGIN_EOF) {
				printf("{\"next_batch_rc\": %d, \"error\": ", rc);
				json_cstr(last_error(st));
				printf("}\n");
				break;
			}
			for (uint32_t i = 0; i < nevts; i++) {
				ss_plugin_event *e = evts[i];
				const uint32_t *lens = (const uint32_t *)((char *)e + sizeof *e);
				uint32_t epid;
				memcpy(&epid, (char *)e + sizeof *e + 8, 4);
				printf("{\"evtnum\": %" PRIu64 ", \"ts\": %" PRIu64
				       ", \"type\": %u, \"plugin_id_ok\": %s, \"data\": ",
				       ++evtnum, e->ts, e->type, epid == pid ? "true" : "false");
				json_str((char *)e + sizeof *e + 8 + lens[0], lens[1]);
				if (nreq) {
					printf(", ");
					extract_and_print(st, e, evtnum, 0);
				}
				printf("}\n");
				events++;
			}
			fflush(stdout); /* a killed host has printed every batch it received */
			if (rc == SS_PLUGIN_EOF) break;
			if (calls_left < 0 && max_events >= 0 && events >= max_events) {
				if (then <= 0) break;
				calls_left = then;
			}
		}
		uint32_t pct = 0;
		const char *ptxt = progress ? progress(st, h, &pct) : NULL;
		printf("{\"end\": true, \"rc\": %d, \"events\": %ld, \"timeouts\": %ld, "
		       "\"progress_pct\": %u, \"progress\": ", rc, events, timeouts, pct);
		json_cstr(ptxt);
		printf("}\n");
		if (argc > 9 && !strcmp(argv[9], "metrics")) print_metrics(st);
		fflush(stdout);
		close(st, h);
		destroy(st);
		return 0;
	}
	fprintf(stderr, "unknown command %s\n", cmd);
	return 2;
}
