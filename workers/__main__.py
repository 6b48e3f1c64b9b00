"""`python -m workers` runs a worker process."""

from workers.main import main

main()
