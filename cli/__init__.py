"""The application edge: the `meterflow` command, its subcommands and the demo. Nothing imports it."""
