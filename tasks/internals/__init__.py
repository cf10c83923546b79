"""The private APIs of icefloe's dependencies, one module per dependency, each with a contract test that fails
loudly when an upgrade breaks it. Nothing else in `tasks/` reaches past a dependency's public API."""
