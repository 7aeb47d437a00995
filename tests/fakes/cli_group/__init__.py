"""A command group for tests/test_commands.py, shaped like a real one under llmd/cli/<group>/."""
