"""The C ABI half of the SDK: the cffi build and the Python callbacks behind `glue.c`."""
