"""ffbench: sweeps, results, reference comparison, reports and models for the ffbench suite."""
