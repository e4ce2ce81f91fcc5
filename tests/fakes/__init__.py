"""Local stand-ins for providers, shared by the tests and the benchmarks."""
