"""The `icefloe` command: `main.py` parses and runs it; a module per command (`write`, with `dry_run`; `demo`,
`history`, `validate`, `kept`, `serve`) holds its parser beside its code; `requests.py` turns arguments into the
typed request a run takes; `run.py` runs a write where Prefect is (or is not); `exit_codes.py` says what the exit
code means, `signals.py` how SIGINT and SIGTERM stop a command."""
