"""The project's commands: ``python -m components <command>``, dispatched by :mod:`components.commands.cli`.

Nothing in the library (the components, settings, schema, testing) imports from here; a command
may import anything from the library. The modules here are internal as Python APIs (docs/api.md):
the stable surface is the command line.
"""
