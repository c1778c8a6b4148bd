"""Sub-commands of ``fhirportal`` that have a room of their own (``cli.py`` adds them to the group)."""
