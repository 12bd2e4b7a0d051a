"""Build a plugin class into a shared library with cffi's embedding mode.

The plugin's identity, fields and init schema are read here, at build time, and compiled
into the library as C constants (glue.c serves them without starting Python). The library
also carries the Python search path it needs, relative to its own location.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cffi

from plugin.sdk.api import Plugin, load_plugin_class

_ABI_DIR = Path(__file__).resolve().parent

# The Python half of glue.c (runtime.py); cffi exports these and starts Python on first use.
_EMBEDDING_API = """
void *sdkpy_init(void *st, const char *config);
void sdkpy_destroy(void *py);
void *sdkpy_open(void *py, void *inst, const char *params);
void sdkpy_close(void *py, void *ipy);
int32_t sdkpy_next_batch(void *py, void *ipy, void *inst);
int32_t sdkpy_list_open_params(void *py, void *st);
int32_t sdkpy_progress(void *py, void *ipy, void *inst, uint32_t *pct);
int32_t sdkpy_event_to_string(void *py, void *st, const char *data, uint32_t len);
int32_t sdkpy_metrics(void *py, void *st);
"""

# The C helpers of glue.c that runtime.py calls.
_HELPERS = """
void sdk_set_error(void *st, const char *msg, size_t len);
void sdk_set_open_params(void *st, const char *s, size_t len);
void sdk_set_event_string(void *st, const char *s, size_t len);
void sdk_set_progress(void *inst, const char *s, size_t len);
int32_t sdk_set_batch(void *inst, const char *blob, size_t len, uint32_t n);
void sdk_slot_key(void *st, uint32_t i, uint32_t *field_id, uint32_t *arg_present,
                  uint64_t *arg_index, const char **arg_key);
void sdk_set_bound(void *st, void *bound);
int32_t sdk_set_metrics(void *st, const char *names, size_t names_len, const double *values,
                        const uint8_t *gauge, uint32_t n);
"""


def c_string(text: str) -> str:
    """A C string literal for any text (octal escapes keep non-ASCII bytes exact)."""
    out = []
    for b in text.encode():
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _constants(cls: type[Plugin], search_path: Sequence[str]) -> str:
    fields = cls.extractor.fields_json if cls.extractor is not None else "[]"
    sources = json.dumps(list(cls.extract_event_sources)) if cls.extract_event_sources else ""
    strings = {
        "SDK_REQUIRED_API_VERSION": cls.required_api_version,
        "SDK_NAME": cls.name,
        "SDK_DESCRIPTION": cls.description,
        "SDK_CONTACT": cls.contact,
        "SDK_VERSION": cls.version,
        "SDK_EVENT_SOURCE": cls.event_source,
        "SDK_FIELDS": fields,
        "SDK_INIT_SCHEMA": cls.init_schema,
        "SDK_EXTRACT_EVENT_SOURCES": sources,
    }
    lines = [f"#define {k} {c_string(v)}" for k, v in strings.items()]
    lines.append(f"#define SDK_ID {int(cls.id)}u")
    entries = "".join(c_string(p) + ", " for p in search_path)
    lines.append(f"static const char *SDK_SEARCH_PATH[] = {{{entries}NULL}};")
    return "\n".join(lines) + "\n"


def build(plugin_ref: str, output: Path, search_path: Sequence[str]) -> Path:
    """Compile `module:Class` into `output` (a .so).

    `search_path`: directories, relative to the library's own directory, that the embedded
    interpreter puts first on sys.path (missing ones are skipped at load time).
    """
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise SystemExit(
            "building a plugin embeds CPython: this Python has no shared libpython "
            "(pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.11; Debian: "
            "apt-get install python3.11-dev libpython3.11)"
        )
    cls = load_plugin_class(plugin_ref)
    module_name = "_" + cls.name.replace("-", "_") + "_plugin"
    source = _constants(cls, search_path) + _EMBEDDING_API + (_ABI_DIR / "glue.c").read_text()
    libdir = sysconfig.get_config_var("LIBDIR")

    ffi = cffi.FFI()
    ffi.embedding_api(_EMBEDDING_API)
    ffi.cdef(_HELPERS)
    ffi.set_source(
        module_name,
        source,
        include_dirs=[str(_ABI_DIR)],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
        # Found first where it was built; a Falco host uses its system libpython3.11.
        extra_link_args=[f"-Wl,-rpath,{libdir}"] if libdir else [],
    )
    ffi.embedding_init_code(
        f"from {module_name} import ffi, lib\n"
        "from plugin.sdk.abi import runtime\n"
        f"runtime.bind(ffi, lib, {plugin_ref!r})\n"
    )
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        built = ffi.compile(tmpdir=tmp, target=output.name, verbose=False)
        shutil.move(built, output)
    return output
