"""Plain, typed logic of icefloe (planning, targets, writing, merging) and the thin Prefect tasks around it."""
