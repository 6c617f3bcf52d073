"""Programs built on the rest: dataset replay through a flowgraph, the live
demo, the benchmark, and the per-SNR / per-class tables they print."""
