"""The network: its architecture, its inference rewrite, what it costs, its
checkpoints and its export as a model file (the one writer of model files)."""
