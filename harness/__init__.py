"""Local stand-ins for what runs in Azure and in Falco: Azurite (storage), the C host that
drives the built plugin through its C ABI as libsinsp does, and real Falco when one is
installed. Used by `make run`, the tests and the benchmarks."""
