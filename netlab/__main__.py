"""`python3 -m netlab` runs the command line."""
from .cli import main

main()
