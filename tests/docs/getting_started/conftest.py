# The getting-started project: tests/docs/test_getting_started.py copies it and runs it as the page says.
collect_ignore = ["tests"]
