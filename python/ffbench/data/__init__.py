"""What ffbench reads and writes: results files (h5io, results, merge, export, machines), sweep
configs (config), the reference files (reference), the one YAML loader (yamlfile) and where the
programs and shipped configs are (paths)."""
