import sys

from scaler.activator.cli import main

sys.exit(main())
