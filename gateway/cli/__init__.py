"""The command line: `intake-gateway` and its subcommands, each a thin call into the package."""
