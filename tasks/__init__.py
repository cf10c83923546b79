"""Plain, typed logic of icefloe, by the stage of a run (planning, storage, writing, committing, running), the
records that travel between the stages, and the fences around its dependencies' private APIs (internals)."""
