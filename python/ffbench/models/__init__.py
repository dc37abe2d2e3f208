"""Cluster-scale models (model output, never measurements): cluster descriptions (cluster), fat
trees (fattree), allreduce predictions (allreduce, sim, calibrate, projection) and costs (cost,
cost_table)."""
