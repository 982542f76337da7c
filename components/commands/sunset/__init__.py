"""``python -m components sunset``: a stack's sunset, by step.

:mod:`~components.commands.sunset.command` is the orchestration (the order of the steps) and the command
line; :mod:`~components.commands.sunset.inputs` what a sunset reads; :mod:`~components.commands.sunset.checks`
the preconditions; :mod:`~components.commands.sunset.plan` what this run will do;
:mod:`~components.commands.sunset.steps` steps 1 to 4 and the confirmation;
:mod:`~components.commands.sunset.registry` step 5; :mod:`~components.commands.sunset.report` the report and
exit codes; :mod:`~components.commands.sunset.stack` the Automation API boundary.
"""
