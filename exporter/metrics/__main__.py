"""`python -m exporter.metrics` prints docs/metrics.md."""

import sys

from exporter.metrics.reference import main

sys.exit(main())
