import sys

from flame_cache.app.cli import main

sys.exit(main())
