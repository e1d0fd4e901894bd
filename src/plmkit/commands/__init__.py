"""Sub-commands of ``plm``, one module per area (see ``plmkit.cli.COMMAND_MODULES``)."""
