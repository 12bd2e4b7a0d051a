"""The benchmarks `make bench` runs: each prints ratios against a baseline run in the same
process (or against upstream k8saudit in the same run), not absolute times alone."""
