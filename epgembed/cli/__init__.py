"""Command line: one library call per subcommand (`epgembed --help`)."""

EXIT_ERROR = 2  # bad input or a failed step: nothing was changed
