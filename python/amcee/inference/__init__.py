"""What a flowgraph loads: the engine, the exit rule and the SNR table, and the
reading and checking of model files.  torch and numpy only: no training code."""
