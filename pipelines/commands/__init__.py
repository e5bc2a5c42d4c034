"""The `platform` command line's command groups, one module each (pipelines/cli.py wires them)."""
