from wstool.cli import main

main()
