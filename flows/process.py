"""What a process that runs icefloe's flows sets up, explicitly: each flow module calls `set_up_flow_process` as it
is imported (Prefect's runner imports a served flow's module in a process of its own: that import is the entry
point), and importing any other module of icefloe changes nothing."""

from flows import prefect_internals
from tasks.logs import quiet_icechunk


def set_up_flow_process() -> None:
    prefect_internals.install()
    quiet_icechunk()
