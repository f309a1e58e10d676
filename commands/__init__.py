"""The mrgen command line: one thin module per subcommand over the ``mrgen`` library."""
