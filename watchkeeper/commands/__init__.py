"""CLI subcommands, one module each, discovered by `watchkeeper.cli`."""
