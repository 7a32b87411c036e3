import sys

from timbre_transfer.cli import main

sys.exit(main())
