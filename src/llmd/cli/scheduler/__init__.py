"""`llmd scheduler ...`: one module per sub-command (see llmd.cli.commands)."""
