"""Training-side code: training, evaluation and its figures, calibration of
thresholds and of the SNR table, the exit rule in numpy and the measured time of
exits.  Nothing here is loaded by a flowgraph."""
