"""A stack's configuration, from the stack file to typed settings.

:mod:`~components.config.stackfile` reads stack files as hostile input (size, depth, aliases,
duplicate keys); :mod:`~components.config.stack_rules` applies the Pulumi CLI's config rules;
:mod:`~components.config.stack_config` hands the configuration over as the CLI would (defaults merged,
every check); :mod:`~components.config.schema` is every setting as data; :mod:`components.config.settings`
turns it into validated, typed settings. Import from the modules; this package imports nothing.
"""
