"""``python -m nids_triage``: the same as the ``nids-triage`` command."""
import sys

from .cli import main

sys.exit(main())
