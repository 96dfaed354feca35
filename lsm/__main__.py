import sys

from lsmguard.cli import main

sys.exit(main())
