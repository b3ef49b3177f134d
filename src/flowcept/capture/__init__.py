"""The capture engine behind the public decorators, loops and task objects (private modules)."""
