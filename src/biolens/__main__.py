from biolens.cli import main

main()
