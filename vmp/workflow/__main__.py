"""``python -m vmp.workflow``: see :mod:`vmp.workflow.commands`."""

from vmp.workflow.commands import main

main()
