from llmd.cli import main

main()
