"""The MPS kernel: errors, the clock, time types, strict config and resource lookup.

Every package may import ``core``; ``core`` imports nothing of ours. Layers above it point one way:
core <- lakehouse <- feature_store <- {training, backtest} <- flows <- mps.
"""
