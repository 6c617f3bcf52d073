"""Synthesis of RML22-style datasets with GNU Radio: transmitters, the
impairment channel, speech-like audio, the generator and its fidelity report."""
