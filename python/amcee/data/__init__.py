"""Datasets: the Dataset type and its split, one module per file format, and
synthesis of RML22-style data with GNU Radio (synth/).  No torch."""
